"""Typed values to bytes for the ``sig`` plugin's ``mcp_ble_encode_value``, on bluetooth-sig.

The library knows each characteristic's value type (``python_type``: a number, a string, an
enumeration, a date, or a msgspec ``Struct`` of fields) and builds the bytes from it
(``build_value``: type check, range check from the SIG's GATT Specification Supplement, encoding,
length check). This module only turns what an agent sends as JSON into that type: msgspec's
``convert`` (the library's own dependency) does the conversion, ISO 8601 dates included; the
walk below lets an enumeration be given by member name as well as by value (``"HIGH_ALERT"`` or
``2``), and a bit field by a list of member names. A scalar characteristic takes
``{"value": x}``; a structured one its fields by name. What a read shows (``plugins/sig/decode.py``)
is accepted too: keys with their unit, a unit carried in the key, ``flags`` left out (checked by
reading the bytes back with the library).
"""

from __future__ import annotations

import enum
import functools
import math
import operator
import typing
from typing import Any

import msgspec
import msgspec.inspect as mi
from bluetooth_sig.gatt.characteristics.base import BaseCharacteristic
from bluetooth_sig.gatt.exceptions import BluetoothSIGError

from mcp_ble.core.errors import InvalidInput

from . import characteristic_class
from .decode import _TRANSPARENT, FieldUnits, snake, with_unit

#: The key a scalar characteristic's value takes: ``{"value": 21.5}``.
SCALAR_KEY = "value"
#: A read shows a detected / not detected state as a boolean (``plugins/sig/decode.py``).
_STATE_NAMES = {True: "detected", False: "not_detected"}
#: Value types a typed write cannot usefully take (opaque bytes; containers of unknown shape):
#: such characteristics are written as hex.
_OPAQUE = (mi.BytesType, mi.ByteArrayType, mi.MemoryViewType, mi.AnyType, mi.CustomType)


@functools.lru_cache(maxsize=1024)  # keys are UUIDs of characteristics written: few
def _characteristic(uuid: str) -> tuple[BaseCharacteristic[Any], mi.Type] | None:
    """The library's characteristic for ``uuid`` and its value type, or None when it has none
    a typed value can be converted to."""
    try:
        # only this characteristic's module: the library's registry would import all 500
        cls = characteristic_class(uuid)
        char = cls() if cls is not None else None
    except (ValueError, TypeError):
        return None
    if char is None:
        return None
    python_type = char.python_type
    if python_type is dict or python_type is None:  # Blood Pressure: what the parser returns
        python_type = _parsed_type(char)
    if python_type is None or isinstance(python_type, str):
        return None
    try:
        info = mi.type_info(python_type)
    except (TypeError, ValueError):
        return None
    if isinstance(info, _OPAQUE) or _is_opaque_container(info):
        return None
    return char, info


def _parsed_type(char: BaseCharacteristic[Any]) -> Any:
    """The struct the library's parser returns where its declared value type is a plain dict
    (Blood Pressure Measurement, Intermediate Cuff Pressure), or None."""
    try:
        hint = typing.get_type_hints(type(char)._decode_value).get("return")
    except Exception:  # a hint that does not resolve: no type to convert to
        return None
    return hint if isinstance(hint, type) and issubclass(hint, msgspec.Struct) else None


def _is_opaque_container(info: mi.Type) -> bool:
    return isinstance(info, (mi.DictType, mi.ListType, mi.VarTupleType, mi.NoneType))


def encode(uuid: str, value: Any) -> bytes | None:
    """The bytes for ``value`` written to characteristic ``uuid``, or None when it cannot be
    encoded here (the caller then asks for hex). A value of the wrong shape raises
    :class:`InvalidInput` listing the fields expected."""
    found = _characteristic(uuid)
    if found is None:
        return None
    char, info = found
    if isinstance(info, mi.StructType):
        if not isinstance(value, dict):
            raise _wrong(char, info, f"{char.name} takes an object of fields")
        value = _nest(char, info, value)
        aliases = _aliases(char, info)
        unknown = sorted(key for key in value if key not in aliases)
        if unknown:
            raise _wrong(char, info, f"{char.name} has no field {_names(unknown)}")
        given: Any = {aliases[key][0]: item for key, item in value.items()}
        for key in value:
            carried = aliases[key][1]  # temperature_c: the unit field says Celsius
            if carried is not None:
                given.setdefault(*carried)
        for field in info.fields:
            if _empty_set(field) and field.encode_name not in given:
                given[field.encode_name] = 0  # a read leaves out a bit field with none set
        for field in info.fields:
            state = given.get(field.encode_name)
            if isinstance(state, bool) and isinstance(field.type, mi.EnumType):
                given[field.encode_name] = _state(field.type.cls, state)
        return _derived(char, info, given)
    elif isinstance(value, dict):
        keys = _scalar_keys(char, info)
        if len(value) != 1 or next(iter(value)) not in keys:
            other = " or ".join(f"'{key}'" for key in sorted(keys - {SCALAR_KEY}))
            also = f" (or {other}, as a read shows it)" if other else ""
            raise _wrong(char, info, f"{char.name} takes one field, '{SCALAR_KEY}'{also}")
        given = next(iter(value.values()))
    else:
        given = value
    return _build(char, info, _convert(char, info, given))


def _convert(char: BaseCharacteristic[Any], info: mi.Type, given: Any) -> Any:
    try:
        target = info.cls if isinstance(info, mi.StructType) else char.python_type
        return msgspec.convert(_by_name(given, info), target, strict=False)
    except _NotMember as exc:
        raise _wrong(char, info, f"{char.name}: {exc}") from None
    except msgspec.ValidationError as exc:
        raise _wrong(char, info, f"{char.name}: {_message(exc, info)}") from None


def _build(char: BaseCharacteristic[Any], info: mi.Type, typed: Any) -> bytes:
    try:
        return bytes(char.build_value(typed))
    except (BluetoothSIGError, ValueError, TypeError, ArithmeticError) as exc:
        # the library's type, range (GATT Specification Supplement) and length checks
        raise _wrong(char, info, f"{char.name}: {_first_line(exc)}") from None


# --------------------------------------------------------------------------- names


def _empty_set(field: mi.Field) -> bool:
    """A required bit field that may be left out when none of its bits is set (``flags``,
    which says which other fields are present, is always given)."""
    return (
        field.required
        and field.encode_name != "flags"
        and isinstance(field.type, mi.EnumType)
        and issubclass(field.type.cls, enum.Flag)
    )


Alias = tuple[str, tuple[str, Any] | None]


def _aliases(char: BaseCharacteristic[Any], info: mi.StructType) -> dict[str, Alias]:
    """Each field by its own name and by the name a read shows it under, with its unit
    (``heart_rate_bpm``), so what ``ble_read`` decoded can be written back. Where a field
    ``unit`` (or ``weight_unit`` for ``weight``) holds the unit of the numbers beside it, a
    read shows that unit in their keys (``temperature_c``): such a key also sets the unit
    field (to the member whose value is that unit's symbol)."""
    units = FieldUnits(char)
    names: dict[str, Alias] = {
        field.encode_name: (field.encode_name, None) for field in info.fields
    }
    for field in info.fields:
        shown = with_unit(field.encode_name, units.of(field.encode_name, ""))
        names.setdefault(shown, (field.encode_name, None))
    numeric = [f.encode_name for f in info.fields if _is_number(f.type)]
    for field in info.fields:
        name = field.encode_name
        if name != "unit" and not name.endswith("_unit"):
            continue
        symbols = _unit_members(field.type)
        targets = [name.removesuffix("_unit")] if name != "unit" else numeric
        for target in targets:
            for symbol in symbols:
                key = with_unit(target, symbol)
                if key != target and key not in {f.encode_name for f in info.fields}:
                    names[key] = (target, (name, symbol))
    return names


def _nest(char: BaseCharacteristic[Any], info: mi.StructType, value: dict[str, Any]) -> Any:
    """``value`` with the fields of a container a read shows as the parent's own (Blood
    Pressure's ``optional_fields``: ``pulse_rate_bpm``, ``timestamp``) put back into it."""
    out = dict(value)
    for field in info.fields:
        inner = field.type
        if field.encode_name not in _TRANSPARENT or not isinstance(inner, mi.StructType):
            continue
        names = _aliases(char, inner)
        moved = {key: out.pop(key) for key in list(out) if key in names and key not in _own(info)}
        if moved:
            nested = dict(out.get(field.encode_name) or {})
            nested.update({names[key][0]: item for key, item in moved.items()})
            out[field.encode_name] = nested
    return out


def _own(info: mi.StructType) -> frozenset[str]:
    return frozenset(field.encode_name for field in info.fields)


def _is_number(info: mi.Type) -> bool:
    if isinstance(info, mi.UnionType):
        return any(_is_number(t) for t in info.types)
    return isinstance(info, mi.IntType | mi.FloatType)


def _unit_members(info: mi.Type) -> list[str]:
    """The unit symbols an enumeration of units holds (``TemperatureUnit``: °C, °F)."""
    if isinstance(info, mi.UnionType):
        return [s for t in info.types for s in _unit_members(t)]
    if isinstance(info, mi.EnumType):
        return [m.value for m in info.cls if isinstance(m.value, str)]
    return []


def _derived(char: BaseCharacteristic[Any], info: mi.StructType, given: dict[str, Any]) -> bytes:
    """The bytes for fields given by name, with ``flags`` (which say which optional fields are
    present and which format or unit is used) and required enumerations a read leaves out
    (Heart Rate Measurement's ``sensor_contact`` when the strap cannot tell, Weight
    Measurement's ``measurement_units``) derived from them, never silently dropped.

    The library's encoders write what the flags say, whatever else is given; so each setting of
    the missing ones is built, fewest flag bits first, and the first kept is the one the
    library parses back to every field given, unchanged, with no other optional field present.
    Flags given are checked the same way: a field they leave out is an error, not lost bytes.
    """
    missing = [
        f
        for f in info.fields
        if f.encode_name not in given and (f.required or f.encode_name == "flags")
    ]
    if any(not _searchable(f) for f in missing):
        names = [f.encode_name for f in missing if not _searchable(f)]
        raise _wrong(char, info, f"{char.name} needs {_names(names)}")
    if not missing and "flags" not in given:  # nothing derived, no flags to check
        return _build(char, info, _convert(char, info, given))
    derived = any(f.encode_name == "flags" for f in missing)
    first_error: InvalidInput | None = None
    for choice in _choices(missing):
        candidate = {**given, **choice}
        try:
            typed = _convert(char, info, candidate)
            data = _build(char, info, typed)
        except InvalidInput as exc:
            first_error = first_error or exc
            continue
        if _reads_back(char, info, data, typed, candidate, derived):
            return data
    if first_error is not None and len(missing) == 0:
        raise first_error
    if "flags" in given:
        raise _wrong(
            char,
            info,
            f"{char.name}: the flags given leave out fields given "
            "(leave 'flags' out to have them derived)",
        )
    if first_error is not None:
        raise first_error
    names = [f.encode_name for f in missing]
    raise _wrong(char, info, f"{char.name} needs {_names(names)} for these fields")


#: At most this many settings of the missing flags and enumerations are tried.
_MAX_CHOICES = 1024


def _searchable(field: mi.Field) -> bool:
    return isinstance(field.type, mi.EnumType)


def _choices(missing: list[mi.Field]) -> list[dict[str, Any]]:
    """Every setting of the ``missing`` fields (a bit field: any union of its bits; an
    enumeration: each member but reserved ones), fewest flag bits and earliest members first."""
    options: list[list[tuple[int, Any]]] = []
    for field in missing:
        cls = field.type.cls  # type: ignore[attr-defined]  # _searchable: an EnumType
        members = [m for m in cls if not _reserved(m)]
        if issubclass(cls, enum.Flag):
            bits = [m.value for m in members if m.value and m.value & (m.value - 1) == 0]
            values = [
                functools.reduce(operator.or_, (b for i, b in enumerate(bits) if mask >> i & 1), 0)
                for mask in range(1 << min(len(bits), 10))
            ]
            options.append([(bin(v).count("1"), v) for v in values])
        else:
            options.append([(i, m.value) for i, m in enumerate(members)])
    combos: list[tuple[int, dict[str, Any]]] = [(0, {})]
    for field, option in zip(missing, options, strict=True):
        combos = [
            (cost + extra, {**choice, field.encode_name: value})
            for cost, choice in combos
            for extra, value in option
        ][:_MAX_CHOICES]
    return [choice for _, choice in sorted(combos, key=lambda c: c[0])]


def _reads_back(
    char: BaseCharacteristic[Any],
    info: mi.StructType,
    data: bytes,
    typed: Any,
    candidate: dict[str, Any],
    derived: bool,
) -> bool:
    """The library parses ``data`` back to every field of ``candidate``; with ``derived``
    flags, also to no optional field that was not given."""
    try:
        back = char.parse_value(bytearray(data))
    except Exception:  # the library could not read its own bytes: not this setting
        return False
    if back is None:
        return False
    for field in info.fields:
        name = field.encode_name
        if name == "flags":
            continue
        if name in candidate:
            if not _same(getattr(back, name, None), getattr(typed, name)):
                return False
        elif (
            derived and not field.required and not isinstance(getattr(back, name, None), enum.Enum)
        ):
            # a field nobody gave is present: the flags say more than was given (a state the
            # parser always fills from other bits, such as Location and Speed's, is no field)
            if not _same(getattr(back, name, None), field.default):
                return False
    return True


def _same(a: Any, b: Any) -> bool:
    """Equal, numbers to within the rounding of the encoding (a thousandth)."""
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-3)
    if isinstance(a, msgspec.Struct) and isinstance(b, msgspec.Struct):
        return type(a) is type(b) and _same(msgspec.structs.astuple(a), msgspec.structs.astuple(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _state(cls: type[enum.Enum], state: bool) -> Any:
    """The member a boolean stands for (``true``: ``detected``), or the boolean when none."""
    for member in cls:
        if snake(str(member.name)) == _STATE_NAMES[state]:
            return member.value
    return state


def _reserved(member: enum.Enum) -> bool:
    return str(member.name or "").upper().startswith("RESERVED")


def _scalar_keys(char: BaseCharacteristic[Any], info: mi.Type) -> frozenset[str]:
    """``value``, and the key a read shows the value under (``temperature_c``, ``text``)."""
    numeric = isinstance(info, mi.IntType | mi.FloatType)
    unit = "s" if isinstance(info, mi.TimeDeltaType) else char.unit if numeric else ""
    shown = "text" if isinstance(info, mi.StrType) else with_unit(snake(char.name), unit)
    return frozenset({SCALAR_KEY, shown})


def _by_name(value: Any, info: mi.Type) -> Any:
    """``value`` with each enumeration member given by name replaced by its value (a list of
    names for a bit field by their union), following ``info`` into fields and optionals."""
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if not isinstance(member, mi.NoneType):
                replaced = _by_name(value, member)
                if replaced is not value:
                    return replaced
        return value
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        types = {field.encode_name: field.type for field in info.fields}
        return {
            key: _by_name(item, types[key]) if key in types else item for key, item in value.items()
        }
    if isinstance(info, mi.EnumType):
        return _member(value, info.cls)
    return value


def _member(value: Any, cls: type[enum.Enum]) -> Any:
    """The value of the member named ``value`` in any case or spacing (``"High Alert"``,
    ``"high_alert"``), the union of a list of names for a bit field, else ``value``. A name
    that is no member raises :class:`_NotMember`."""
    members = {snake(name): member.value for name, member in cls.__members__.items()}
    if isinstance(value, str):
        if snake(value) in members:
            return members[snake(value)]
        if value in {member.value for member in cls}:  # a unit by its symbol: "°C"
            return value
        raise _NotMember(value, cls)
    if isinstance(value, list) and issubclass(cls, enum.Flag):
        for item in value:
            if isinstance(item, str) and snake(item) not in members:
                raise _NotMember(item, cls)
        if all(isinstance(item, str) for item in value):
            return functools.reduce(operator.or_, (members[snake(v)] for v in value), 0)
    return value


class _NotMember(ValueError):
    def __init__(self, name: str, cls: type[enum.Enum]) -> None:
        super().__init__(f"'{name[:40]}' is not one of {_members(cls)}")


def _members(cls: type[enum.Enum]) -> str:
    """Member names as a read shows them, reserved ones left out."""
    names = [snake(m.name) for m in cls if m.name and not _reserved(m)]
    return "|".join(names[:12]) + ("|..." if len(names) > 12 else "")


# --------------------------------------------------------------------------- what is expected


def _wrong(char: BaseCharacteristic[Any], info: mi.Type, what: str) -> InvalidInput:
    return InvalidInput(f"{what}. It takes {expected(char, info)}", _example(char, info))


def expected(char: BaseCharacteristic[Any], info: mi.Type) -> str:
    """The fields ``char`` takes, each with its type, unit and range where the library knows
    them; optional ones marked."""
    if isinstance(info, mi.StructType):
        parts = []
        for field in info.fields:
            unit = _field_unit(char, field.name)
            text = f"{field.encode_name} ({_kind(field.type)}{', ' + unit if unit else ''})"
            parts.append(text if field.required and not _empty_set(field) else f"{text}?")
        legend = " (? optional)" if any(not field.required for field in info.fields) else ""
        return "{" + ", ".join(parts) + "}" + legend
    extras = [_kind(info)]
    if char.unit:
        extras.append(char.unit)
    bounds = _range(char)
    if bounds:
        extras.append(bounds)
    return f"{{{SCALAR_KEY}: {', '.join(extras)}}}"


def _example(char: BaseCharacteristic[Any], info: mi.Type) -> str:
    if isinstance(info, mi.StructType):
        return "give the fields by name, enumerations by member name, dates in ISO 8601"
    return f'give {{"{SCALAR_KEY}": ...}}, or send the bytes as hex'


def _field_unit(char: BaseCharacteristic[Any], name: str) -> str:
    """The unit a read shows field ``name`` in (the service specification's where the
    registry's differs: Heart Rate Measurement's Energy Expended in kJ)."""
    try:
        return FieldUnits(char).of(name, "") or str(char.get_field_unit(name) or "")
    except (AttributeError, KeyError, ValueError, TypeError):
        return ""


def _range(char: BaseCharacteristic[Any]) -> str:
    low, high = char.min_value, char.max_value
    if low is None and high is None and char.spec is not None and char.spec.structure:
        for field in char.spec.structure:
            if field.value_range is not None:
                low, high = field.value_range
                break
    if low is None and high is None:
        return ""
    return f"{'' if low is None else _number(low)}..{'' if high is None else _number(high)}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _kind(info: mi.Type) -> str:
    """A short name for a value type: number, integer, text, date-time, one of names, ..."""
    if isinstance(info, mi.UnionType):
        return " or ".join(_kind(t) for t in info.types if not isinstance(t, mi.NoneType))
    if isinstance(info, mi.EnumType):
        kind = "list of" if issubclass(info.cls, enum.Flag) else "one of"
        return f"{kind} {_members(info.cls)}"
    if isinstance(info, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return f"list of {_kind(info.item_type)}"
    if isinstance(info, mi.StructType):
        return "{" + ", ".join(f.encode_name for f in info.fields) + "}"
    return {
        mi.IntType: "integer",
        mi.FloatType: "number",
        mi.StrType: "text",
        mi.BoolType: "true/false",
        mi.DateTimeType: "ISO date-time",
        mi.DateType: "ISO date",
        mi.TimeType: "ISO time",
        mi.TimeDeltaType: "seconds",
    }.get(type(info), type(info).__name__.removesuffix("Type").lower())


def _names(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names[:8])


def _message(exc: msgspec.ValidationError, info: mi.Type) -> str:
    return _first_line(exc).replace("`$.", "`").replace("`$`", "the value")


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
