"""Settings: one pydantic-settings model, assembled from the core's fields and the sections that
backends and plugins declare through their registration hooks.

Sources, lowest to highest: defaults < TOML file < environment (``MCP_BLE_...``, nested with
``__``) < command-line flags. Every value remembers where it came from (``mcp-ble config show``),
and every invalid key or value becomes one :class:`ConfigError` naming the key and its source.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from .errors import ConfigError, InvalidInput
from .settings_radios import RadioSpec, check_fleet, radio_models, radio_type
from .settings_show import mask_secrets, radio_rows

ENV_PREFIX = "MCP_BLE_"
#: Enabled when the settings name no plugins list. ``chunking`` is opt-in: it changes what a
#: peripheral receives (a stream of pieces instead of one value).
DEFAULT_PLUGINS = (
    "metrics",
    "retry",
    "pool",
    "listeners",
    "cleanup",
    "adaptive_scan",
    "mtu",
    "sig",
)
#: Environment variables with our prefix that are not settings (read elsewhere on purpose).
NON_SETTING_ENV = frozenset({"MCP_BLE_HARDWARE"})


def default_config_path() -> Path:
    """The settings file shipped with the package (``config/default.toml`` in the repository)."""
    return Path(str(resources.files("mcp_ble.config") / "default.toml"))


class AllowEntry(BaseModel):
    """One ``[[server.allowlist]]`` pair: writes to ``characteristic`` on ``device`` pass."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(
        description="an address ('C4:7C:8D:6A:12:01') or a pattern for the advertised name "
        "('Lamp-*'); names are chosen by the device, so prefer addresses"
    )
    characteristic: str = Field(
        description="a UUID ('2a06', full), a value handle ('#14'), or 'pair' for pairing; "
        "a characteristic's descriptors are covered by its entry"
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        from .values import parse_address

        if not value.strip():
            raise ValueError("device is empty: give an address or a name pattern")
        try:
            return parse_address(value)
        except InvalidInput:
            return value  # a name pattern

    @field_validator("characteristic")
    @classmethod
    def _characteristic(cls, value: str) -> str:
        from .values import parse_handle, parse_uuid

        if value.strip().lower() == "pair":
            return "pair"
        try:
            handle = parse_handle(value)
            return f"#{handle}" if handle is not None else parse_uuid(value)
        except InvalidInput as exc:
            raise ValueError(f"{exc.what}; or 'pair' for pairing") from None


class ServerSettings(BaseModel):
    """``[server]``: limits and defaults of the core, whichever backend runs."""

    model_config = ConfigDict(extra="forbid")

    scan_duration_s: float = Field(5.0, gt=0, le=300, description="default ble_scan duration")
    max_concurrent_scans: int = Field(
        3, ge=1, le=64, description="scan requests sharing the radio at once; more wait"
    )
    connect_timeout_s: float = Field(20.0, gt=0, le=120, description="default ble_connect timeout")
    operation_timeout_s: float = Field(
        10.0, gt=0, le=120, description="deadline of one read, write or discovery, retries included"
    )
    notification_buffer: int = Field(
        256, ge=1, le=100_000, description="notifications kept per subscription; older ones drop"
    )
    recent_s: float = Field(
        300.0,
        gt=0,
        description="ble_devices and ble_sensors list devices and readings heard within this "
        "many seconds",
    )
    sensors_listen: bool = Field(
        True,
        description="while a client subscribes to ble://sensors the server listens for "
        "advertisements itself (sharing the radio with scans), so the readings update",
    )
    max_tracked_devices: int = Field(
        10_000, ge=1, description="devices remembered between scans; the least recent is forgotten"
    )
    write_policy: Literal["read_only", "confirm", "allowlist", "open"] = Field(
        "confirm",
        description="read_only: nothing is written; confirm: the person approves each write "
        "(MCP elicitation); allowlist: only server.allowlist pairs; open: any write",
    )
    allowlist: list[AllowEntry] = Field(
        default_factory=list,
        description="(device, characteristic) pairs that may be written without asking: "
        "device is an address or a name pattern, characteristic a UUID, '#handle' or 'pair'",
    )
    audit_log: str = Field(
        "stderr", description="where every write attempt is logged: 'stderr' or a file path"
    )
    audit_values: bool = Field(False, description="also log the bytes of each write (hex)")
    audit_max_bytes: int = Field(
        10_000_000, ge=10_000, description="rotate the audit file at this size"
    )
    audit_backups: int = Field(3, ge=0, le=100, description="rotated audit files kept")

    http_token: SecretStr | None = Field(
        None,
        description="bearer token every HTTP request must carry; required off loopback "
        "(environment MCP_BLE_SERVER__HTTP_TOKEN, or http_token_file)",
    )
    http_token_file: Path | None = Field(
        None, description="file holding the bearer token (first line)"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values the HTTP server answers besides loopback and its bind "
        "address, e.g. 'ble.example.org' or 'ble.example.org:*'",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origin header values allowed besides loopback, e.g. 'https://ble.example.org'",
    )
    http_session_idle_s: float = Field(
        1800.0,
        gt=0,
        description="an HTTP session with no request for this long ends, and what only it "
        "held (subscriptions, buffers) is released",
    )

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = [k for k in REPLACED_KEYS if k in data]
            if old:
                # _explain words it, naming where each key was set.
                raise PydanticCustomError(
                    "replaced_key", "{keys} replaced by server.write_policy", {"keys": old}
                )
        return data


#: Settings that are gone, and what to write instead (said as "server.KEY was replaced by ...").
_POLICY = 'server.write_policy: use write_policy = "read_only", "confirm", "allowlist" or "open"'
REPLACED_KEYS = {
    "allow_writes": _POLICY,
    "confirm_writes": _POLICY,
    "write_allowlist": (
        'server.allowlist (device and characteristic pairs) with write_policy = "allowlist"'
    ),
}


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class CoreSettings(BaseSettings):
    """The fields every configuration has; plugin and backend sections are added at load time."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
    )

    backend: str = Field(
        "auto", description="the backend that runs: auto, bleak, simulated, simplepyble, bumble"
    )
    plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PLUGINS),
        description="optimization plugins to enable, in order (built-in or entry-point names)",
    )
    trace_hooks: bool = Field(False, description="print every plugin hook call to stderr")
    server: ServerSettings = Field(default_factory=ServerSettings)
    #: ``[[radios]]``: several radios behind one server (core/fleet.py). The loaded model
    #: replaces ``Any`` with one model per backend (:func:`build_settings_class`).
    radios: list[Any] = Field(
        default_factory=list,
        description="several radios as one: each a table with name, backend, optional slots "
        "and that backend's own settings; replaces backend",
    )

    _validate_plugins = field_validator("plugins", mode="before")(_split_list)
    #: The ``[[radios]]`` table model of each backend (set by :func:`build_settings_class`).
    radio_models: ClassVar[dict[str, type[BaseModel]]] = {}

    def section(self, name: str) -> Any:
        """The validated settings of a plugin section: ``[retry]`` is ``section("retry")``."""
        return getattr(self, name)

    def backend_settings(self, name: str) -> Any:
        return getattr(self.backends, name, None)  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _fleet(self) -> CoreSettings:
        check_fleet(self.backend, "backend" in self.model_fields_set, self.radios)
        return self

    def radio_list(self) -> list[RadioSpec]:
        """The radios that run: the ``[[radios]]`` tables, or a fleet of one named after
        ``backend``."""
        if not self.radios:
            return [RadioSpec(self.backend, self.backend, self.backend_settings(self.backend))]
        return [RadioSpec(r.name, r.backend, r.backend_model(), r.slots) for r in self.radios]


CORE_KEYS = frozenset(CoreSettings.model_fields) | {"backends"}


class _DictSource(PydanticBaseSettingsSource):
    """A settings source that returns a dict we already parsed (the TOML file)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


def build_settings_class(
    backend_models: dict[str, type[BaseModel] | None],
    sections: dict[str, type[BaseModel]],
) -> type[CoreSettings]:
    """The settings model for this set of available backends and plugin sections."""
    backend_fields: dict[str, Any] = {}
    for name, model in backend_models.items():
        if model is not None:
            backend_fields[name] = (model, Field(default_factory=model))
    radios = radio_models(backend_models)
    one_radio: Any = radio_type(radios)
    backends_model = create_model(  # type: ignore[call-overload]
        "BackendsSettings", __config__=ConfigDict(extra="forbid"), **backend_fields
    )
    section_fields = {
        name: (model, Field(default_factory=model)) for name, model in sections.items()
    }
    settings: type[CoreSettings] = create_model(  # type: ignore[call-overload]
        "Settings",
        __base__=CoreSettings,
        backends=(backends_model, Field(default_factory=backends_model)),
        radios=(list[one_radio], Field(default_factory=list)),
        **section_fields,
    )
    settings.radio_models = dict(radios)
    return settings


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(_flatten(value, path))  # an empty table sets nothing
            else:
                out[path] = value
    return out


def _env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", "__").upper()


@dataclass
class LoadedSettings:
    """Validated settings plus where each value came from."""

    settings: CoreSettings
    config_path: Path
    file_data: dict[str, Any]
    env_data: dict[str, Any]
    cli_data: dict[str, Any]

    def origin(self, dotted: str) -> str:
        """``flag``, ``env MCP_BLE_...``, the file path, or ``default``."""
        for source, label in (
            (self.cli_data, "flag"),
            (self.env_data, f"env {_env_name(dotted)}"),
            (self.file_data, str(self.config_path)),
        ):
            flat = _flatten(source)
            if dotted in flat or any(dotted.startswith(k + ".") for k in flat):
                return label
        return "default"

    def rows(self) -> list[tuple[str, Any, str]]:
        """(dotted key, effective value, origin) for every leaf setting (radios.0.name...)."""
        dumped = mask_secrets(self.settings, self.settings.model_dump(mode="json"))
        rows: list[tuple[str, Any, str]] = []
        for key, value in _flatten(dumped).items():
            if key == "radios" and isinstance(value, list) and value:
                rows += radio_rows(value, self, _flatten)
                continue
            rows.append((key, value, self.origin(key)))
        return rows


#: Deepest nesting of tables and arrays a settings or world file may have. Ours need 4; the
#: bound keeps a hostile file from exhausting the parser's or the validator's recursion.
MAX_DEPTH = 32


def depth_of(data: Any) -> int:
    """How deeply tables and arrays nest in ``data`` (iterative: any depth is safe)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        stack.extend((child, depth) for child in children)
    return deepest


def parse_toml(path: Path, what: str = "settings file") -> dict[str, Any]:
    """Parse a TOML file; every failure becomes a one-line ConfigError that names the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}; give a .toml file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            f"TOML files must be UTF-8: save it as UTF-8"
        ) from None
    too_deep = ConfigError(
        f"{path}: tables or arrays nested deeper than {MAX_DEPTH} levels; no setting needs that"
    )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if depth_of(data) > MAX_DEPTH:
        raise too_deep
    return data


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a settings file, turning every failure into a ConfigError that names the file."""
    if not path.exists() and not path.is_symlink():
        raise ConfigError(
            f"{path}: settings file not found; pass an existing file with --config, "
            f"or omit --config to use the shipped defaults"
        )
    return parse_toml(path)


def load_settings(
    settings_cls: type[CoreSettings],
    config_path: Path | None = None,
    cli: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> LoadedSettings:
    """Load and validate settings from all sources; raise ConfigError on any problem."""
    path = Path(config_path) if config_path else default_config_path()
    file_data = read_toml(path)
    cli_data = {k: v for k, v in (cli or {}).items() if v is not None}
    env = dict(os.environ if environ is None else environ)

    fields = set(settings_cls.model_fields)
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in NON_SETTING_ENV:
            continue
        top = name[len(ENV_PREFIX) :].split("__")[0].lower()
        if top not in fields:
            raise ConfigError(
                f"environment variable {name}: unknown setting '{top}'; "
                f"valid top-level settings: {', '.join(sorted(fields))}"
            )

    env_data = _env_data(env)
    if depth_of(env_data) > MAX_DEPTH:
        raise ConfigError(
            f"environment: MCP_BLE_ variables nested deeper than {MAX_DEPTH} levels ('__')"
        )

    class _Loaded(settings_cls):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                _DictSource(settings_cls, env_data),
                _DictSource(settings_cls, file_data),
            )

    try:
        settings = _Loaded(**cli_data)
    except ValidationError as exc:
        raise ConfigError(
            _explain(exc, path, file_data, env_data, cli_data, settings_cls)
        ) from None
    except SettingsError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return LoadedSettings(settings, path, file_data, env_data, cli_data)


def _env_data(env: dict[str, str]) -> dict[str, Any]:
    """The nested dict of our ``MCP_BLE_...`` variables (``__`` separates nesting levels).

    Values stay strings for pydantic to coerce, except JSON lists and tables."""
    data: dict[str, Any] = {}
    for name, raw in env.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NON_SETTING_ENV:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        value: Any = raw
        if raw.strip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"environment variable {name}: invalid JSON: {exc}") from None
            except RecursionError:
                raise ConfigError(
                    f"environment variable {name}: JSON nested deeper than Python can parse"
                ) from None
        node[parts[-1]] = value
    return data


def _lookup(data: dict[str, Any], loc: tuple[Any, ...]) -> tuple[bool, Any]:
    node: Any = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False, None
    return True, node


#: Settings whose values are never echoed in an error (server.http_token, an ESPHome proxy's
#: noise_psk and API password).
SECRET_WORDS = ("token", "psk", "password")


def _explain(
    exc: ValidationError,
    path: Path,
    file_data: dict[str, Any],
    env_data: dict[str, Any],
    cli_data: dict[str, Any],
    settings_cls: type[CoreSettings],
) -> str:
    """One readable line per problem: the source, the key, what is wrong, what is allowed."""
    lines = []

    def source(loc: tuple[Any, ...]) -> str:
        dotted = ".".join(str(p) for p in loc)
        for data, label in (
            (cli_data, "command-line flag"),
            (env_data, f"environment variable {_env_name(dotted)}"),
            (file_data, str(path)),
        ):
            found, _ = _lookup(data, loc)
            if found:
                return label
        return str(path)

    radio_models = settings_cls.radio_models
    for error in exc.errors():
        loc = tuple(error["loc"])
        radio_model = None
        if len(loc) > 2 and loc[0] == "radios" and isinstance(loc[1], int):
            radio_model = radio_models.get(str(loc[2]))
            if radio_model is not None:  # drop the tag pydantic adds: radios.0.bleak.adapter
                loc = (*loc[:2], *loc[3:])
        dotted = ".".join(str(p) for p in loc)
        where = source(loc)
        if error["type"] == "fleet":
            at = (error.get("ctx") or {}).get("at")  # the index of the table breaking a rule
            key = "radios" if at is None else f"radios.{at}.name"
            lines.append(f"{source(('radios',))}: {key}: {error['msg']}")
        elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            names = ", ".join(sorted(radio_models))
            found, table = _lookup({**file_data, **env_data, **cli_data}, loc)
            tag = table.get("backend") if found and isinstance(table, dict) else None
            what = "names no backend" if tag is None else f"backend = {tag!r} is not a backend"
            lines.append(f"{where}: {dotted}: {what}; available: {names}")
        elif error["type"] == "extra_forbidden" and radio_model is not None:
            allowed = sorted(radio_model.model_fields)
            lines.append(f"{where}: unknown key '{dotted}'; valid keys here: {', '.join(allowed)}")
        elif error["type"] == "replaced_key":
            for key in error.get("ctx", {}).get("keys", []):
                lines.append(
                    f"{source((*loc, key))}: {dotted}.{key} was replaced by {REPLACED_KEYS[key]}"
                )
        elif error["type"] == "extra_forbidden":
            allowed = _allowed_keys(settings_cls, loc[:-1])
            hint = f"; valid keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{where}: unknown key '{dotted}'{hint}")
        else:
            found, value = _lookup({**file_data, **env_data, **cli_data}, loc)
            # Never echo a secret (server.http_token, a decoder's keys), nor a whole table that
            # may hold one.
            secret = (
                any(w in dotted for w in SECRET_WORDS) or "keys" in loc or isinstance(value, dict)
            )
            shown = f" = {value!r}" if found and not secret else ""
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {dotted}{shown}: {message}")
    return "\n".join(lines)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        if not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return sorted(model.model_fields)
