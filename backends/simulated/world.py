"""World files: a virtual set of BLE devices, loaded from TOML and validated strictly.

The same world drives the simulated backend and the bumble test bed, so a world describes
devices the way a peripheral would: advertising data and a GATT database with values that come
from generators. On top of that it describes the radio: ``[link]`` (the adapter and the default
link parameters), per-device ``[devices.link]`` overrides, an RSSI model, and ``[devices.faults]``
(fault injection). ``[[crowds]]`` generate many similar devices. ``[[radios]]`` place several
adapters in the world, each hearing the devices in its range at an RSSI that falls with
distance. The format is documented in the README ("World files"); every key is validated and an
unknown key is an error.
"""

from __future__ import annotations

import math
import random
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mcp_ble.core.errors import ConfigError, InvalidInput
from mcp_ble.core.settings import parse_toml
from mcp_ble.core.values import parse_address, parse_uuid

from .floor import Position, Radio

PROPERTIES = (
    "broadcast",
    "read",
    "write-without-response",
    "write",
    "notify",
    "indicate",
    "authenticated-signed-writes",
    "extended-properties",
)

CCCD = parse_uuid("2902")
USER_DESCRIPTION = parse_uuid("2901")


def _uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a UUID must be a string such as '180f' or a full 128-bit UUID")
    try:
        return parse_uuid(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


def _hex(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a hex string such as '0102ff'")
    cleaned = value.replace(" ", "").replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"'{value}' is not valid hex (two hex digits per byte)") from None


Uuid = Annotated[str, BeforeValidator(_uuid)]
Hex = Annotated[bytes, BeforeValidator(_hex)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Generator(Strict):
    """Where a characteristic's value comes from over time."""

    kind: Literal["constant", "counter", "random_walk", "sine"] = "constant"
    value: float = 0.0
    start: float | None = None
    step: float = 1.0
    min: float = -math.inf
    max: float = math.inf
    period_s: float = Field(60.0, gt=0)
    amplitude: float = 1.0


FORMATS = {
    "uint8": "<B",
    "sint8": "<b",
    "uint16": "<H",
    "sint16": "<h",
    "uint24": None,
    "uint32": "<I",
    "sint32": "<i",
    "float32": "<f",
    "utf8": None,
}


class Descriptor(Strict):
    uuid: Uuid
    value: Hex = b""
    writable: bool = True


class Characteristic(Strict):
    uuid: Uuid
    properties: list[Literal[PROPERTIES]] = Field(default_factory=lambda: ["read"])  # type: ignore[valid-type]
    value: Hex | None = None
    text: str | None = None
    generator: Generator | None = None
    format: Literal[tuple(FORMATS)] = "uint8"  # type: ignore[valid-type]
    scale: float = Field(1.0, gt=0)
    prefix: Hex = b""
    notify_hz: float = Field(1.0, ge=0, le=10_000)
    description: str | None = None
    descriptors: list[Descriptor] = Field(default_factory=list)
    echo_to: Uuid | None = None
    max_length: int = Field(512, ge=0, le=512)

    @model_validator(mode="after")
    def _one_source(self) -> Characteristic:
        sources = [s for s in (self.value, self.text, self.generator) if s is not None]
        if len(sources) > 1:
            raise ValueError("give only one of value, text or generator")
        return self


class Service(Strict):
    uuid: Uuid
    characteristics: list[Characteristic] = Field(default_factory=list)


ATT_ERRORS = {
    "invalid_handle": 0x01,
    "read_not_permitted": 0x02,
    "write_not_permitted": 0x03,
    "insufficient_authentication": 0x05,
    "request_not_supported": 0x06,
    "invalid_offset": 0x07,
    "insufficient_authorization": 0x08,
    "invalid_length": 0x0D,
    "unlikely_error": 0x0E,
    "insufficient_encryption": 0x0F,
    "insufficient_resources": 0x11,
}

PhyName = Literal["1M", "2M", "coded", "coded_s2", "coded_s8"]


def _interval_steps(value: float | None) -> float | None:
    """Connection intervals are multiples of 1.25 ms."""
    if value is not None and abs(value / 1.25 - round(value / 1.25)) > 1e-6:
        raise ValueError(f"{value} ms is not a multiple of 1.25 ms (e.g. 7.5, 15, 30, 45)")
    return value


class Link(Strict):
    """``[link]``: the adapter, and the link parameters every device gets unless it overrides
    them in ``[devices.link]``."""

    connection_interval_ms: float = Field(30.0, ge=7.5, le=4000)
    phy: PhyName = "1M"
    max_mtu: int = Field(517, ge=23, le=517)
    data_length: int = Field(251, ge=27, le=251)
    packets_per_event: int = Field(4, ge=1, le=64)
    loss_rate: float = Field(0.0, ge=0, lt=1)
    supervision_timeout_ms: float = Field(4000.0, ge=100, le=32000)
    adapter_slots: int = Field(7, ge=1, le=64)
    tx_buffers: int = Field(16, ge=1, le=1024)
    scan_interval_ms: float = Field(11.25, ge=2.5, le=10240)
    scan_window_ms: float = Field(11.25, ge=2.5, le=10240)
    connect_scan_interval_ms: float = Field(60.0, ge=2.5, le=10240)
    connect_scan_window_ms: float = Field(60.0, ge=2.5, le=10240)
    sensitivity_dbm: int = Field(-100, ge=-127, le=0)
    #: The adapter is unplugged at this simulated time, and plugged back in at the next.
    radio_lost_at_s: float | None = Field(None, ge=0)
    radio_back_at_s: float | None = Field(None, ge=0)

    _steps = field_validator("connection_interval_ms")(_interval_steps)

    @model_validator(mode="after")
    def _consistent(self) -> Link:
        lost, back = self.radio_lost_at_s, self.radio_back_at_s
        if back is not None and (lost is None or back <= lost):
            raise ValueError("radio_back_at_s needs a radio_lost_at_s before it")
        if self.scan_window_ms > self.scan_interval_ms:
            raise ValueError("scan_window_ms must not exceed scan_interval_ms")
        if self.connect_scan_window_ms > self.connect_scan_interval_ms:
            raise ValueError("connect_scan_window_ms must not exceed connect_scan_interval_ms")
        _check_supervision(self.supervision_timeout_ms, self.connection_interval_ms)
        return self


def _check_supervision(timeout_ms: float, interval_ms: float) -> None:
    if timeout_ms <= 2 * interval_ms:
        raise ValueError(
            f"supervision_timeout_ms = {timeout_ms:g} must exceed twice the connection interval "
            f"({2 * interval_ms:g} ms)"
        )


class LinkOverrides(Strict):
    """``[devices.link]``: this device's link parameters where they differ from ``[link]``."""

    connection_interval_ms: float | None = Field(None, ge=7.5, le=4000)
    phy: PhyName | None = None
    data_length: int | None = Field(None, ge=27, le=251)
    packets_per_event: int | None = Field(None, ge=1, le=64)
    loss_rate: float | None = Field(None, ge=0, lt=1)
    supervision_timeout_ms: float | None = Field(None, ge=100, le=32000)

    _steps = field_validator("connection_interval_ms")(_interval_steps)


class TransientErrors(Strict):
    """``[devices.faults.errors]``: probability per GATT operation (read, write, discovery,
    descriptor access, subscription) of each transient error class real stacks raise."""

    aborted: float = Field(0.0, ge=0, le=1)
    in_progress: float = Field(0.0, ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)


class ConnectErrors(Strict):
    """``[devices.faults.connect_errors]``: probability per connect attempt of each error class
    (an attempt aborted by interference is ``connect_failure_rate``)."""

    in_progress: float = Field(0.0, ge=0, le=1)
    out_of_slots: float = Field(0.0, ge=0, le=1)
    not_found: float = Field(0.0, ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)


def _att_error(value: Any) -> int:
    if isinstance(value, str):
        if value not in ATT_ERRORS:
            raise ValueError(f"unknown ATT error '{value}'; use one of {', '.join(ATT_ERRORS)}")
        return ATT_ERRORS[value]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 0xFF:
        return value
    raise ValueError("an ATT error is a name such as 'insufficient_authentication' or 1..255")


class GattFault(Strict):
    """An entry of ``gatt_errors``: characteristic ``uuid`` answers ``op`` with an ATT error."""

    uuid: Uuid
    op: Literal["read", "write", "subscribe", "any"] = "any"
    error: Annotated[int, BeforeValidator(_att_error)]
    rate: float = Field(1.0, ge=0, le=1)


class Faults(Strict):
    """``[devices.faults]``: what goes wrong with this device, and when."""

    connect_failure_rate: float = Field(0.0, ge=0, le=1)
    connect_errors: ConnectErrors = Field(default_factory=ConnectErrors)
    errors: TransientErrors = Field(default_factory=TransientErrors)
    disconnect_after_ops: int | None = Field(None, ge=1)
    disconnect_at_s: float | None = Field(None, ge=0)
    out_of_range_at_s: float | None = Field(None, ge=0)
    notify_storm_hz: float = Field(0.0, ge=0, le=100_000)
    notify_storm_at_s: float = Field(0.0, ge=0)
    slow_response_ms: float = Field(0.0, ge=0, le=60_000)
    slow_response_rate: float = Field(1.0, ge=0, le=1)
    gatt_errors: list[GattFault] = Field(default_factory=list)


def _company_keys(value: dict[str, bytes]) -> dict[str, bytes]:
    for key in value:
        try:
            company = int(key, 0)
        except ValueError:
            raise ValueError(
                f"manufacturer id '{key}' is not a number (use e.g. \"0x0059\")"
            ) from None
        if not 0 <= company <= 0xFFFF:
            raise ValueError(f"manufacturer id {key} is outside 0..0xFFFF")
    return value


class Advert(Strict):
    """An entry of ``[[devices.adverts]]``: what the device advertises for ``for_s`` seconds
    (over its ``manufacturer_data`` and ``service_data``, key by key) before the next entry; the
    list repeats. Payloads from real sensors make their broadcast readings change over time."""

    for_s: float = Field(10.0, gt=0, le=86_400)
    manufacturer_data: dict[str, Hex] = Field(default_factory=dict)
    service_data: dict[str, Hex] = Field(default_factory=dict)

    _companies = field_validator("manufacturer_data")(_company_keys)

    @field_validator("service_data")
    @classmethod
    def _service_data_uuids(cls, value: dict[str, bytes]) -> dict[str, bytes]:
        return {_uuid(key): data for key, data in value.items()}


class Device(Strict):
    address: str
    name: str | None = None
    rssi: int = Field(-60, ge=-127, le=20)
    rssi_noise_db: float = Field(2.0, ge=0, le=30)
    rssi_drift_db_per_s: float = Field(0.0, ge=-100, le=100)
    tx_power: int | None = Field(None, ge=-127, le=20)
    adv_interval_ms: float = Field(100.0, ge=20, le=10_240)
    connectable: bool = True
    service_uuids: list[Uuid] = Field(default_factory=list)
    manufacturer_data: dict[str, Hex] = Field(default_factory=dict)
    service_data: dict[str, Hex] = Field(default_factory=dict)
    adverts: list[Advert] = Field(default_factory=list, max_length=1000)
    mtu: int = Field(247, ge=23, le=517)
    position: Position | None = None
    link: LinkOverrides = Field(default_factory=LinkOverrides)
    services: list[Service] = Field(default_factory=list)
    faults: Faults = Field(default_factory=Faults)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return parse_address(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None

    _companies = field_validator("manufacturer_data")(_company_keys)

    @field_validator("service_data")
    @classmethod
    def _service_data_uuids(cls, value: dict[str, bytes]) -> dict[str, bytes]:
        return {_uuid(key): data for key, data in value.items()}

    def company_data(self) -> dict[int, bytes]:
        return {int(key, 0): data for key, data in self.manufacturer_data.items()}


Span = Annotated[tuple[float, float], BeforeValidator(lambda v: (v, v) if _number(v) else v)]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Crowd(Strict):
    """``[[crowds]]``: ``count`` similar devices generated from one description, for scan scaling.

    Numbers given as ``[low, high]`` are drawn per device, uniformly, from the world's seed.
    Addresses count up from ``first_address``; ``name`` may contain ``{i}`` (1, 2, ...)."""

    count: int = Field(ge=1, le=100_000)
    first_address: str
    name: str | None = "Device {i}"
    adv_interval_ms: Span = (100.0, 100.0)
    rssi: Span = (-60.0, -60.0)
    rssi_noise_db: float = Field(2.0, ge=0, le=30)
    tx_power: int | None = Field(None, ge=-127, le=20)
    connectable_fraction: float = Field(0.0, ge=0, le=1)
    service_uuids: list[Uuid] = Field(default_factory=list)
    manufacturer_data: dict[str, Hex] = Field(default_factory=dict)
    service_data: dict[str, Hex] = Field(default_factory=dict)
    mtu: int = Field(247, ge=23, le=517)
    area: tuple[float, float, float, float] | None = None
    services: list[Service] = Field(default_factory=list)

    @field_validator("first_address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            address = parse_address(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        if len(address) != 17:
            raise ValueError("first_address must be a MAC address such as 02:00:00:00:00:01")
        return address

    @field_validator("area")
    @classmethod
    def _area(
        cls, value: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if value is not None and (value[0] > value[2] or value[1] > value[3]):
            raise ValueError("area is [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1")
        return value

    @field_validator("adv_interval_ms", "rssi")
    @classmethod
    def _span(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"[{value[0]:g}, {value[1]:g}]: the low end exceeds the high end")
        return value

    def expand(self, seed: int, index: int) -> list[dict[str, Any]]:
        """The devices as ``[[devices]]`` tables (validated by the caller like written ones)."""
        rng = random.Random(f"{seed}:crowd:{index}")
        base = int(self.first_address.replace(":", ""), 16)
        out = []
        for i in range(1, self.count + 1):
            raw = f"{base + i - 1:012X}"
            device: dict[str, Any] = {
                "address": ":".join(raw[k : k + 2] for k in range(0, 12, 2)),
                "adv_interval_ms": round(rng.uniform(*self.adv_interval_ms), 3),
                "rssi": round(rng.uniform(*self.rssi)),
                "rssi_noise_db": self.rssi_noise_db,
                "connectable": rng.random() < self.connectable_fraction,
                "service_uuids": list(self.service_uuids),
                "manufacturer_data": dict(self.manufacturer_data),
                "service_data": dict(self.service_data),
                "mtu": self.mtu,
                "services": [s.model_dump() for s in self.services],
            }
            if self.name is not None:
                device["name"] = self.name.replace("{i}", str(i))
            if self.tx_power is not None:
                device["tx_power"] = self.tx_power
            if self.area is not None:
                x0, y0, x1, y1 = self.area
                device["position"] = (round(rng.uniform(x0, x1), 2), round(rng.uniform(y0, y1), 2))
            out.append(device)
        return out


class World(Strict):
    name: str = "world"
    description: str = ""
    seed: int = 0
    path_loss_exponent: float = Field(2.0, ge=1, le=6)
    link: Link = Field(default_factory=Link)
    radios: list[Radio] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    crowds: list[Crowd] = Field(default_factory=list)

    @model_validator(mode="after")
    def _expand_and_check(self) -> World:
        for index, crowd in enumerate(self.crowds):
            for table in crowd.expand(self.seed, index):
                try:
                    self.devices.append(Device.model_validate(table))
                except ValidationError as exc:
                    raise ValueError(f"crowds[{index}] makes an invalid device: {exc}") from None
        self.crowds = []
        names = [radio.name for radio in self.radios]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two radios are named {', '.join(twice)}")
        seen: set[str] = set()
        for device in self.devices:
            if device.address in seen:
                raise ValueError(f"two devices have the address {device.address}")
            seen.add(device.address)
            interval = device.link.connection_interval_ms or self.link.connection_interval_ms
            timeout = device.link.supervision_timeout_ms or self.link.supervision_timeout_ms
            try:
                _check_supervision(timeout, interval)
            except ValueError as exc:
                raise ValueError(f"device {device.address}: {exc}") from None
        return self

    def radio(self, name: str) -> Radio:
        """The ``[[radios]]`` entry called ``name``."""
        for radio in self.radios:
            if radio.name == name:
                return radio
        have = ", ".join(r.name for r in self.radios) or "none"
        raise ConfigError(
            f"world '{self.name}' has no radio '{name}' (its [[radios]]: {have}); "
            "name one of them, or leave radio unset for the world's single adapter"
        )


def bundled_worlds() -> list[str]:
    folder = resources.files("mcp_ble.config") / "worlds"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def world_path(name_or_path: str) -> Path:
    """A bundled world by name (``demo``) or a path to a TOML file."""
    if "/" not in name_or_path and not name_or_path.endswith(".toml"):
        candidate = resources.files("mcp_ble.config") / "worlds" / f"{name_or_path}.toml"
        if candidate.is_file():
            return Path(str(candidate))
        raise ConfigError(
            f"world '{name_or_path}' is not a bundled world ({', '.join(bundled_worlds())}); "
            "give one of those names or a path to a .toml world file"
        )
    return Path(name_or_path)


def load_world(name_or_path: str) -> World:
    """Load and validate a world; every problem becomes one ConfigError naming file and key."""
    path = world_path(name_or_path)
    data = parse_toml(path, "world file")
    try:
        return World.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = _dotted(error["loc"], data)
            if error["type"] == "extra_forbidden":
                lines.append(f"{path}: unknown key '{key}'")
            else:
                msg = error["msg"].removeprefix("Value error, ")
                lines.append(f"{path}: {key}: {msg}" if key else f"{path}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def _dotted(loc: tuple[Any, ...], data: Any) -> str:
    """``devices[2].services[0].uuid`` (with the device's address when known)."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                address = node[part].get("address")
                if address:
                    label = f"[{part}] ({address})"
            parts.append(label)
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            parts.append(("." if parts else "") + str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts)
