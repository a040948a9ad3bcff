"""World files: a virtual set of BLE devices, loaded from TOML and validated strictly.

The same world drives the simulated backend and the bumble test bed, so a world describes
devices the way a peripheral would: advertising data and a GATT database with values that come
from generators. The format is documented in the README ("World files").
"""

from __future__ import annotations

import math
import random
import struct
import tomllib
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
from mcp_ble.core.values import parse_address, parse_uuid

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


class Faults(Strict):
    """Fault injection; the timing model issue extends this table."""

    connect_failure_rate: float = Field(0.0, ge=0, le=1)


class Device(Strict):
    address: str
    name: str | None = None
    rssi: int = Field(-60, ge=-127, le=20)
    tx_power: int | None = Field(None, ge=-127, le=20)
    adv_interval_ms: float = Field(100.0, ge=20, le=10_240)
    connectable: bool = True
    service_uuids: list[Uuid] = Field(default_factory=list)
    manufacturer_data: dict[str, Hex] = Field(default_factory=dict)
    service_data: dict[str, Hex] = Field(default_factory=dict)
    mtu: int = Field(247, ge=23, le=517)
    services: list[Service] = Field(default_factory=list)
    faults: Faults = Field(default_factory=Faults)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return parse_address(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None

    @field_validator("manufacturer_data")
    @classmethod
    def _company_ids(cls, value: dict[str, bytes]) -> dict[str, bytes]:
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

    @field_validator("service_data")
    @classmethod
    def _service_data_uuids(cls, value: dict[str, bytes]) -> dict[str, bytes]:
        return {_uuid(key): data for key, data in value.items()}

    def company_data(self) -> dict[int, bytes]:
        return {int(key, 0): data for key, data in self.manufacturer_data.items()}


class World(Strict):
    name: str = "world"
    description: str = ""
    seed: int = 0
    devices: list[Device] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_addresses(self) -> World:
        seen: set[str] = set()
        for device in self.devices:
            if device.address in seen:
                raise ValueError(f"two devices have the address {device.address}")
            seen.add(device.address)
        return self


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
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: world file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
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
                lines.append(f"{path}: {key}: {msg}")
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


# --------------------------------------------------------------------------- values over time


class ValueSource:
    """Produces a characteristic's bytes from its generator, a fixed value or text."""

    def __init__(self, spec: Characteristic, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        gen = spec.generator
        self.current = (gen.start if gen.start is not None else gen.value) if gen else 0.0
        if spec.value is not None:
            self.fixed: bytes | None = spec.value
        elif spec.text is not None:
            self.fixed = spec.text.encode()
        elif gen is None:
            self.fixed = b""
        else:
            self.fixed = None

    def sample(self, t: float) -> bytes:
        """The value at simulated time ``t`` (seconds); advances counters and walks."""
        if self.fixed is not None:
            return self.fixed
        gen = self.spec.generator
        assert gen is not None
        if gen.kind == "constant":
            number = gen.value
        elif gen.kind == "counter":
            number = self.current
            nxt = self.current + gen.step
            if nxt > gen.max:
                nxt = gen.min if math.isfinite(gen.min) else (gen.start or 0.0)
            self.current = nxt
        elif gen.kind == "random_walk":
            self.current = min(
                gen.max, max(gen.min, self.current + self.rng.uniform(-gen.step, gen.step))
            )
            number = self.current
        else:  # sine
            base = gen.start if gen.start is not None else gen.value
            number = base + gen.amplitude * math.sin(2 * math.pi * t / gen.period_s)
        return self.spec.prefix + encode_number(number, self.spec.format, self.spec.scale)

    def store(self, data: bytes) -> None:
        """A write replaces the value (the generator, if any, stops)."""
        self.fixed = data


def encode_number(number: float, fmt: str, scale: float) -> bytes:
    if fmt == "utf8":
        return f"{number:g}".encode()
    raw = round(number / scale)
    if fmt == "uint24":
        return max(0, min(raw, 0xFFFFFF)).to_bytes(3, "little")
    code = FORMATS[fmt]
    assert code is not None
    if fmt == "float32":
        return struct.pack(code, number / scale)
    bits = struct.calcsize(code) * 8
    if code[1].islower():
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return struct.pack(code, max(lo, min(raw, hi)))
