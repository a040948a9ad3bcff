"""A parsed bluetooth-sig value as flat result fields, each named with its unit.

bluetooth-sig returns a number, a string, an enum, or a structure (msgspec structs and
dataclasses, sometimes nested). Results are flat and compact, so:

- a number is keyed by the characteristic's name and unit: Battery Level 87 ->
  ``{"battery_level_percent": 87}``, Temperature -> ``temperature_c``;
- a string is ``text`` (the core then shows no hex copy when it is exactly the bytes);
- a structure's fields keep their names, with the unit the SIG's GATT Specification Supplement
  gives that field (``heart_rate_bpm``, ``systolic_mmhg``): the library's per-field unit, or
  the unit the value itself carries (Temperature Measurement's Celsius/Fahrenheit flag);
  fields of nested structures are prefixed with their parent's name; a unit the key already
  names in a word is not appended (Date of Birth's ``year``, not ``year_yr``); a duration is
  in seconds (Time Hour 24 ``time_hour_24_s``);
- enums are their names in lower case (a detected/not detected state is a boolean), flags the
  list of those set; absent optional fields,
  the ``flags`` field (what it says is which others are present), empty strings and NaN/NRes
  are left out;
- a nested structure's ``description`` or ``name`` is shown under the structure's own name
  (Local Time Information's ``timezone``), a child repeating its parent's last word is not
  doubled (``dst_offset_hours``), and a number that only restates a decoded field beside it
  is left out: ``raw_value`` (the hex holds it) and ``category_value`` beside ``category``.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import re
from typing import Any

#: Units the SIG's registry spells in words, and symbols a key spells differently.
_UNIT_WORDS = {
    "%": "percent",
    "°C": "c",
    "°F": "f",
    "°": "deg",
    "K": "k",
    "µs": "us",
    "length.meter": "m",
    "density.kilogram_per_cubic_meter": "kg_per_m3",
    "flow.cubic_metre_per_second": "m3_per_s",
    "illuminance.lumen": "lm",
    "luminous_energy.lumen_per_hour": "lm_h",
}
#: Units a key naming them in a word already states: Date of Birth's ``year`` is not
#: ``year_yr``, Time Second 16 not ``time_second_16_s``.
_RESTATED = {
    "yr": ("year", "years"),
    "mo": ("month", "months"),
    "d": ("day", "days"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "ms": ("millisecond", "milliseconds"),
}
#: Units that say nothing a key could carry.
_NO_UNIT = frozenset({"", "various", "bitmap", "unitless"})
#: Containers whose fields are shown as if they were the parent's own.
_TRANSPARENT = frozenset({"info", "optional_fields", "data", "value", "values"})
_NON_WORD = re.compile(r"[^0-9a-z]+")
#: Enum states shown as a boolean, or left out (None), to keep results short: Heart Rate
#: Measurement's sensor contact is ``true``, ``false``, or absent when the strap cannot tell.
_STATES = {"detected": True, "not_detected": False, "not_supported": None}


def snake(name: str) -> str:
    """'Acceleration - 3D' -> 'acceleration_3d'; 'CO\\textsubscript{2}' -> 'co2'."""
    name = name.replace("\\textsubscript{", "").replace("}", "")
    return _NON_WORD.sub("_", name.lower()).strip("_")


def unit_suffix(unit: str) -> str:
    """'°C' -> 'c', 'm/s²' -> 'm_per_s2', '' -> ''."""
    if not unit or unit in _NO_UNIT or " or " in unit:
        return ""
    if unit in _UNIT_WORDS:
        return _UNIT_WORDS[unit]
    text = unit.split(".", 1)[1] if "." in unit else unit
    text = text.replace("/", "_per_").replace("²", "2").replace("³", "3").replace("µ", "u")
    text = text.replace("°", "deg").replace("%", "percent")
    return snake(text)


def with_unit(key: str, unit: str) -> str:
    suffix = unit_suffix(unit)
    if not suffix or key == suffix or key.endswith(f"_{suffix}"):
        return key
    if any(word in _RESTATED.get(suffix, ()) for word in key.split("_")):
        return key
    return f"{key}_{suffix}"


def primitive(value: Any) -> Any:
    """A JSON value for one field, or None to leave it out."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Flag):
        return [snake(m.name or "") for m in type(value) if m.value and m in value]
    if isinstance(value, enum.Enum):
        return snake(value.name) if isinstance(value.name, str) else primitive(value.value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None  # NaN, NRes or an infinity: no reading
        return float(f"{value:.10g}")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple | set | frozenset):
        items = [primitive(v) for v in value]
        return [v for v in items if v is not None]
    if isinstance(value, dict) or _is_struct(value):
        shown = {k: primitive(v) for k, v in _items(value)}
        return {k: v for k, v in shown.items() if v is not None}
    return str(value)


def _is_struct(value: Any) -> bool:
    # msgspec's Struct (the library's results) lists its fields in __struct_fields__
    return hasattr(type(value), "__struct_fields__") or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    fields = getattr(type(value), "__struct_fields__", None)
    if fields is not None:
        return [(f, getattr(value, f)) for f in fields]
    return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]


#: Field units the library's registry lacks or has wrong, from the characteristic's service
#: specification, for the values as the library returns them (it scales these to the unit).
_SPEC_UNITS: dict[str, dict[str, str]] = {
    # Heart Rate Service 1.0 §3.1.1.3-4: Energy Expended in kilojoules (the registry says
    # joule), RR-Interval in 1/1024 s (the library divides by 1024)
    "heart_rate_measurement": {"energy_expended": "kJ", "rr_intervals": "s"},
    # Cycling Speed and Cadence Service 1.0 §3.1.1: event times in 1/1024 s (divided)
    "csc_measurement": {"last_wheel_event_time": "s", "last_crank_event_time": "s"},
    # Cycling Power Service 1.1 §3.2.1: wheel event time 1/2048 s, crank 1/1024 s (divided)
    "cycling_power_measurement": {"last_wheel_event_time": "s", "last_crank_event_time": "s"},
    # Core 5.4 Vol 3 Part C §12.3: intervals in 1.25 ms, supervision timeout in 10 ms units
    # (the library multiplies out to ms)
    "peripheral_preferred_connection_parameters": {
        "min_interval": "ms",
        "max_interval": "ms",
        "timeout": "ms",
    },
}

#: Field units by field name alone: the GSS's Time Exponential 8 (1.1^(N-64) seconds) that the
#: statistics and average characteristics measure over (Average Current, Temperature
#: Statistics, ...; the library returns seconds).
_NAMED_UNITS = {"sensing_duration": "s"}
#: The fields of an "X Statistics" characteristic that are values of characteristic X, in its
#: unit (GSS: Temperature Statistics, Voltage Statistics, Electric Current Statistics, ...).
STATISTICS = ("average", "standard_deviation", "minimum", "maximum")


class FieldUnits:
    """The units the SIG's GATT Specification Supplement gives a characteristic's fields."""

    def __init__(self, characteristic: Any) -> None:
        spec = getattr(characteristic, "_spec", None)
        structure = getattr(spec, "structure", None) or []
        self.fields: list[tuple[str, str]] = [
            (f.python_name, f.unit_symbol) for f in structure if getattr(f, "unit_symbol", "")
        ]
        name = getattr(characteristic, "name", None)
        self.key = snake(name) if isinstance(name, str) else ""
        self.fixed = _SPEC_UNITS.get(self.key, {})
        unit = getattr(characteristic, "unit", None)
        self.unit = unit if isinstance(unit, str) else ""

    def of(self, name: str, carried: str) -> str:
        """The unit of field ``name``: the service specification's where the registry lacks
        it, else the one the registry gives it (when it offers several, as Celsius or
        Fahrenheit, the one the value carries), else the one the value carries, else the
        characteristic's own when the field is what it is named after (``current`` of
        Average Current)."""
        if name in self.fixed:
            return self.fixed[name]
        if name in _NAMED_UNITS:
            return _NAMED_UNITS[name]
        found = [
            unit
            for spec_name, unit in self.fields
            if spec_name == name
            or spec_name.endswith(f"_{name}")
            or spec_name.startswith(f"{name}_")
        ]
        if carried and (not found or carried in found or len(set(found)) > 1):
            return carried
        if not found and self.unit and (self.key == name or self.key.endswith(f"_{name}")):
            return self.unit  # the field the characteristic is named after: Average Current's
        return found[0] if found else ""


def flatten(key: str, unit: str, value: Any, units: FieldUnits) -> dict[str, Any]:
    """The result fields of one parsed value (see the module docstring)."""
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, dict) or _is_struct(value):
        present = [v for _, v in _items(value) if v is not None]
        if len(present) == 1 and type(present[0]) is str:
            return {"text": present[0]}  # a string in a wrapper (User Description's)
        out: dict[str, Any] = {}
        _flatten_struct(value, "", units, out)
        return _without_restated(out)
    shown = primitive(value)
    if shown is None:
        return {}
    if isinstance(value, datetime.timedelta):
        unit = "s"  # shown in seconds, whatever unit the characteristic counts in
    return {with_unit(key, unit if isinstance(shown, int | float) else ""): shown}


def _unit_text(value: Any) -> str:
    """The unit a ``unit`` field holds (an enum of unit symbols, or a string), or ''."""
    if isinstance(value, enum.Enum) and isinstance(value.value, str):
        return value.value
    return value if isinstance(value, str) else ""


def _flatten_struct(value: Any, prefix: str, units: FieldUnits, out: dict[str, Any]) -> None:
    items = _items(value)
    # a field "unit" gives the unit of the numbers beside it, "weight_unit" that of "weight"
    carried = {
        name: text
        for name, item in items
        if (name == "unit" or name.endswith("_unit")) and (text := _unit_text(item))
    }
    for name, item in items:
        if item is None or name == "flags" or name in carried:
            continue
        if isinstance(item, dict) or _is_struct(item):
            inner = prefix if name in _TRANSPARENT else f"{_key(prefix, name)}_"
            _flatten_struct(item, inner, units, out)
            continue
        shown = primitive(item)
        if isinstance(item, enum.Enum) and isinstance(shown, str) and shown in _STATES:
            shown = _STATES[shown]
        if shown is None or shown == [] or shown == "":
            continue
        key = _key(prefix, name)
        numeric = isinstance(shown, int | float) and not isinstance(shown, bool)
        if numeric or (isinstance(shown, list) and shown and isinstance(shown[0], int | float)):
            unit = carried.get(f"{name}_unit", carried.get("unit", ""))
            seconds = isinstance(item, datetime.timedelta)  # shown in seconds
            key = with_unit(key, "s" if seconds else units.of(name, unit))
        out[key] = shown


def _key(prefix: str, name: str) -> str:
    """A nested field's key: ``timezone_`` + ``description`` -> ``timezone``, ``dst_offset_``
    + ``offset_hours`` -> ``dst_offset_hours``."""
    if not prefix:
        return name
    if name in ("description", "name"):
        return prefix[:-1]
    last = prefix[:-1].rsplit("_", 1)[-1]
    if name.startswith(f"{last}_"):
        return prefix + name[len(last) + 1 :]
    return prefix + name


def _without_restated(out: dict[str, Any]) -> dict[str, Any]:
    """Leaves out numbers that restate a decoded field beside them: ``raw_value`` (the bytes,
    shown as hex) when anything else is decoded, ``x_value`` when ``x`` is shown."""
    restated = [
        key
        for key in out
        if ((key == "raw_value" or key.endswith("_raw_value")) and len(out) > 1)
        or (key.endswith("_value") and key[: -len("_value")] in out)
    ]
    for key in restated:
        del out[key]
    return out
