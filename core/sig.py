"""Bluetooth SIG names and decoders for well-known characteristics.

UUID names come from bleak's public tables (``bleak.uuids``), company names from the
bluetooth-numbers package (the company identifiers of the Bluetooth SIG's Assigned Numbers), never
typed by hand here. Decoders follow the GATT Specification Supplement for the characteristics
agents ask about most often.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from functools import cache
from typing import Any

from bleak.uuids import uuid16_dict, uuid128_dict

BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def short_uuid(uuid: str) -> str | None:
    """``'2a19'`` for a SIG-base UUID with a 16-bit value, else None."""
    if uuid.endswith(BASE_SUFFIX) and uuid.startswith("0000"):
        return uuid[4:8]
    return None


def uuid_name(uuid: str) -> str | None:
    """The SIG (or well-known vendor) name of a full lowercase UUID, or None if unknown."""
    name = uuid128_dict.get(uuid)
    if name:
        return name
    if uuid.endswith(BASE_SUFFIX):
        value = int(uuid[:8], 16)
        if value <= 0xFFFF:
            return uuid16_dict.get(value)
    return None


@cache
def _companies() -> dict[int, str]:
    # Imported on first use: the package loads its OUI table too (about 0.2 s), which a server
    # that never sees manufacturer data should not pay for at start.
    from bluetooth_numbers import company

    return dict(company)


def company_name(company_id: int) -> str | None:
    """The Bluetooth SIG's name for a company identifier, or None if it is not assigned."""
    return _companies().get(company_id)


# --------------------------------------------------------------------------- decoders


def _sfloat(raw: int) -> float | None:
    """IEEE-11073 16-bit SFLOAT."""
    mantissa = raw & 0x0FFF
    exponent = raw >> 12
    if mantissa in (0x07FF, 0x0800, 0x07FE, 0x0802, 0x0801):
        return None  # NaN, NRes, +/-inf, reserved
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    if exponent >= 0x8:
        exponent -= 0x10
    return round(mantissa * math.pow(10, exponent), 6)


def _float32(raw: int) -> float | None:
    """IEEE-11073 32-bit FLOAT."""
    mantissa = raw & 0xFFFFFF
    exponent = raw >> 24
    if mantissa in (0x7FFFFF, 0x800000, 0x7FFFFE, 0x800002, 0x800001):
        return None
    if mantissa >= 0x800000:
        mantissa -= 0x1000000
    if exponent >= 0x80:
        exponent -= 0x100
    return round(mantissa * math.pow(10, exponent), 6)


def _battery_level(data: bytes) -> dict[str, Any]:
    return {"battery_level_percent": data[0]}


def _heart_rate_measurement(data: bytes) -> dict[str, Any]:
    flags = data[0]
    offset = 1
    if flags & 0x01:
        bpm = struct.unpack_from("<H", data, offset)[0]
        offset += 2
    else:
        bpm = data[offset]
        offset += 1
    out: dict[str, Any] = {"heart_rate_bpm": bpm}
    if flags & 0x06 == 0x06:
        out["sensor_contact"] = True
    elif flags & 0x06 == 0x04:
        out["sensor_contact"] = False
    if flags & 0x08:
        out["energy_expended_kj"] = struct.unpack_from("<H", data, offset)[0]
        offset += 2
    if flags & 0x10:
        rr = []
        while offset + 2 <= len(data):
            rr.append(round(struct.unpack_from("<H", data, offset)[0] / 1024, 4))
            offset += 2
        out["rr_intervals_s"] = rr
    return out


def _temperature(data: bytes) -> dict[str, Any]:
    value = struct.unpack_from("<h", data)[0]
    return {"temperature_c": None if value == -32768 else round(value * 0.01, 2)}


def _humidity(data: bytes) -> dict[str, Any]:
    value = struct.unpack_from("<H", data)[0]
    return {"humidity_percent": None if value == 0xFFFF else round(value * 0.01, 2)}


def _pressure(data: bytes) -> dict[str, Any]:
    return {"pressure_pa": round(struct.unpack_from("<I", data)[0] * 0.1, 1)}


def _temperature_measurement(data: bytes) -> dict[str, Any]:
    flags = data[0]
    value = _float32(struct.unpack_from("<I", data, 1)[0])
    unit = "fahrenheit" if flags & 0x01 else "celsius"
    return {f"temperature_{'f' if unit == 'fahrenheit' else 'c'}": value}


def _body_sensor_location(data: bytes) -> dict[str, Any]:
    names = ["other", "chest", "wrist", "finger", "hand", "ear lobe", "foot"]
    return {"location": names[data[0]] if data[0] < len(names) else f"reserved ({data[0]})"}


def _tx_power(data: bytes) -> dict[str, Any]:
    return {"tx_power_dbm": struct.unpack_from("<b", data)[0]}


def _appearance(data: bytes) -> dict[str, Any]:
    value = struct.unpack_from("<H", data)[0]
    return {"appearance": value, "category": value >> 6, "subcategory": value & 0x3F}


def _cccd(data: bytes) -> dict[str, Any]:
    value = struct.unpack_from("<H", data)[0]
    return {"notifications": bool(value & 1), "indications": bool(value & 2)}


def _blood_pressure(data: bytes) -> dict[str, Any]:
    flags = data[0]
    unit = "kpa" if flags & 0x01 else "mmhg"
    sys_, dia, mean = (_sfloat(struct.unpack_from("<H", data, 1 + 2 * i)[0]) for i in range(3))
    return {f"systolic_{unit}": sys_, f"diastolic_{unit}": dia, f"mean_arterial_{unit}": mean}


DECODERS: dict[str, tuple[int, Callable[[bytes], dict[str, Any]]]] = {
    # short uuid: (minimum length, decoder)
    "2a19": (1, _battery_level),
    "2a37": (2, _heart_rate_measurement),
    "2a6e": (2, _temperature),
    "2a6f": (2, _humidity),
    "2a6d": (4, _pressure),
    "2a1c": (5, _temperature_measurement),
    "2a38": (1, _body_sensor_location),
    "2a07": (1, _tx_power),
    "2a01": (2, _appearance),
    "2a35": (7, _blood_pressure),
    "2902": (2, _cccd),
}

#: Characteristics whose value is a UTF-8 string by definition.
STRING_CHARACTERISTICS = frozenset({"2a00", "2a24", "2a25", "2a26", "2a27", "2a28", "2a29", "2901"})


def decode(uuid: str, data: bytes) -> dict[str, Any] | None:
    """A decoded view of a well-known value, or None. Malformed values decode to an error entry
    rather than raising: the raw bytes are always returned alongside."""
    short = short_uuid(uuid)
    if short is None:
        return None
    if short in STRING_CHARACTERISTICS:
        return {"text": data.decode("utf-8", errors="replace")}
    entry = DECODERS.get(short)
    if entry is None:
        return None
    minimum, decoder = entry
    if len(data) < minimum:
        return {"error": f"value is {len(data)} bytes; this characteristic needs {minimum}+"}
    try:
        return decoder(data)
    except (struct.error, IndexError) as exc:
        return {"error": f"malformed value: {exc}"}


def printable_text(data: bytes) -> str | None:
    """The value as text when it is valid UTF-8 made of printable characters."""
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.rstrip("\x00")
    if stripped and all(ch.isprintable() or ch in "\r\n\t" for ch in stripped):
        return stripped
    return None
