"""The ``sig`` decoder plugin: Bluetooth SIG characteristics and descriptors decoded, typed
values encoded, and UUIDs named, by the ``bluetooth-sig`` library (MIT), which parses the
characteristics of the SIG's GATT Specification Supplement from the SIG's own YAML registry.

- ``mcp_ble_decode_value``: every characteristic (and descriptor) the library parses, as flat
  fields named with their units (``plugins/sig/decode.py``). A value the library cannot parse
  (unknown UUID, too short, malformed) gets ``None``: the core shows hex and text.
- ``mcp_ble_encode_value``: ``plugins/sig/encode.py``.
- ``mcp_ble_uuid_name``: service, characteristic and descriptor names from the same registry,
  then from bluetooth-numbers' tables (which hold vendor UUIDs such as Nordic's UART too).

Nothing of the library is imported at start: the first name asked or value decoded imports it
and its UUID registry, and a value only its characteristic's module (``characteristic_class``):
about 0.13 s of CPU; the first value encoded likewise (about 0.15 s). Then 16-70 µs a value.
The library's IEEE 11073 float handling is corrected before any value is parsed or built
(``ieee11073.py``).
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any
from uuid import UUID

from mcp_ble.core.hookspecs import hookimpl

from .decode import STATISTICS, FieldUnits, flatten, snake, with_unit

_PACKAGE = "bluetooth_sig.gatt.characteristics"
_lock = threading.Lock()
_loaded: dict[str, Any] = {}
#: Per UUID: how to decode it (a parser, its result key, unit and field units), or None.
_parsers: dict[str, tuple[Any, str, str, FieldUnits, bool] | None] = {}


def library() -> dict[str, Any]:
    """bluetooth-sig's parsers, loaded once per process (thread-safe) with the IEEE 11073
    correction in place."""
    if "characteristics" in _loaded:
        return _loaded
    with _lock:
        if "characteristics" not in _loaded:
            from bluetooth_sig.gatt.characteristics import registry as characteristics_registry
            from bluetooth_sig.gatt.characteristics._export_map import LAZY_EXPORT_MAP
            from bluetooth_sig.gatt.characteristics.registry import CharacteristicRegistry
            from bluetooth_sig.gatt.characteristics.utils.ieee11073_parser import (
                IEEE11073Parser,
            )
            from bluetooth_sig.gatt.descriptors.registry import DescriptorRegistry
            from bluetooth_sig.gatt.exceptions import SpecialValueDetectedError

            from .ieee11073 import install

            install(IEEE11073Parser)
            _fast_class_check(characteristics_registry)
            # A peer's malformed value is not a server problem: the library's warnings about
            # the values it could not parse would flood the log with every notification.
            logging.getLogger("bluetooth_sig").setLevel(logging.ERROR)
            _loaded["descriptors"] = DescriptorRegistry
            _loaded["special"] = SpecialValueDetectedError
            modules: dict[str, list[str]] = {}
            for class_name, module in LAZY_EXPORT_MAP.items():
                modules.setdefault(module, []).append(class_name)
            _loaded["modules"] = modules
            _loaded["characteristics"] = CharacteristicRegistry  # last: the "loaded" mark
    return _loaded


def _fast_class_check(module: Any) -> None:
    """The library's registry finds its characteristic classes by testing every class of its
    500-odd modules with ``issubclass`` against an abstract base class: each test that fails
    walks the ABC's 500 subclasses (about 160,000 checks, over a second of CPU). A class is a
    characteristic when ``BaseCharacteristic`` is in its MRO (the library registers no virtual
    subclasses), which is one tuple scan (tests/plugins/test_sig_units.py compares the two)."""
    base = module.BaseCharacteristic

    def is_characteristic(candidate: object) -> bool:
        return isinstance(candidate, type) and base in candidate.__mro__

    module._is_characteristic_subclass = is_characteristic


def _uuids() -> Any:
    """bluetooth-sig's registry of the SIG's UUIDs and their names."""
    registry = _loaded.get("uuids")
    if registry is None:
        with _lock:
            from bluetooth_sig.gatt.uuid_registry import get_uuid_registry

            registry = _loaded["uuids"] = get_uuid_registry()
    return registry


def characteristic_class(uuid: str) -> Any:
    """bluetooth-sig's class for characteristic ``uuid``, or None, importing only its module.

    The library's own lookup (``CharacteristicRegistry``) first imports all 500-odd
    characteristic modules and checks every class in them. The SIG's registry names the
    characteristic, and the library keeps each in a module of that name (Battery Level in
    ``battery_level``); the class there whose UUID is this one is the class the library's
    lookup finds (tests/plugins/test_sig_units.py checks all of them). A name that is not its
    module's (4 in 0.6.0: the PM and NMVOC concentrations) falls back to the library's
    lookup; a UUID the SIG's registry does not know as a characteristic has no class (every
    class's UUID is in it)."""
    lib = library()
    info = _uuids().get_characteristic_info(uuid)
    if info is None:
        return None
    found = class_in_module(info)
    return found or lib["characteristics"].get_characteristic_class_by_uuid(uuid)


def class_in_module(info: Any) -> Any:
    """The class for the characteristic the registry describes as ``info``, from the module
    of its name, or None."""
    module = f"{_PACKAGE}.{snake(info.name)}"
    wanted = info.uuid.normalized
    for class_name in library()["modules"].get(module, ()):
        cls = getattr(importlib.import_module(module), class_name)
        try:
            found = cls.get_class_uuid()
        except (AttributeError, ValueError):
            continue
        if found is not None and found.normalized == wanted:
            return cls
    return None


def _unit_of(characteristic: str) -> str:
    """The unit of the characteristic named ``characteristic`` (a number's), or ''."""
    info = _uuids().get_characteristic_info(characteristic)
    cls = class_in_module(info) if info is not None else None
    unit = getattr(cls(), "unit", "") if cls is not None else ""
    return unit if isinstance(unit, str) else ""


def _parser(uuid: str) -> tuple[Any, str, str, FieldUnits, bool] | None:
    try:
        return _parsers[uuid]
    except KeyError:
        pass
    lib = library()
    entry: tuple[Any, str, str, FieldUnits, bool] | None = None
    cls = characteristic_class(uuid)
    if cls is not None:
        parser = cls()
        units = FieldUnits(parser)
        if parser.name.endswith(" Statistics") and not units.fields:
            # the average, minimum, ... of characteristic X, in X's unit
            measured = _unit_of(parser.name.removesuffix(" Statistics"))
            if measured:
                units.fixed = {**dict.fromkeys(STATISTICS, measured), **units.fixed}
        entry = (parser, snake(parser.name), parser.unit or "", units, False)
    else:
        descriptor = lib["descriptors"].create_descriptor(uuid)
        if descriptor is not None:
            entry = (descriptor, snake(descriptor.name), "", FieldUnits(None), True)
    if len(_parsers) < 4096:
        _parsers[uuid] = entry
    return entry


def decode(uuid: str, data: bytes) -> dict[str, Any] | None:
    """The fields of a value bluetooth-sig parses, or None."""
    entry = _parser(uuid)
    if entry is None:
        return None
    parser, key, unit, units, is_descriptor = entry
    try:
        if is_descriptor:
            parsed = parser.parse_value(data)
            if not parsed.parse_success:
                return None
            value = parsed.value
        else:
            value = parser.parse_value(bytearray(data))
    except Exception as exc:
        if isinstance(exc, _loaded["special"]):
            # a value the characteristic reserves for a state ("value is not known": the
            # GATT Specification Supplement's Temperature 0x8000, Humidity 0xFFFF)
            special: Any = exc
            meaning = str(special.special_value.meaning).removeprefix("value is ")
            return {with_unit(key, unit): meaning}
        if not is_descriptor and parser.python_type is str:
            # a string characteristic whose bytes are not UTF-8: show what can be read
            return {"text": data.decode("utf-8", errors="replace")}
        return None
    if isinstance(value, str) and value.encode() not in data:
        return {key: value} if value else None  # a name for a code: Time Zone 0x04 'UTC+01:00'
    return flatten(key, unit, value, units) or None


def name(uuid: str) -> str | None:
    """The registry's name for a service, characteristic or descriptor UUID, or None."""
    registry = _uuids()
    for lookup in (
        registry.get_service_info,
        registry.get_characteristic_info,
        registry.get_descriptor_info,
    ):
        info = lookup(uuid)
        if info is not None and info.name:
            return str(info.name)
    from bluetooth_numbers import characteristic, descriptor, service

    key: int | UUID
    if uuid.endswith("-0000-1000-8000-00805f9b34fb") and uuid.startswith("0000"):
        key = int(uuid[4:8], 16)
    else:
        try:
            key = UUID(uuid)
        except ValueError:
            return None  # not a UUID at all: nothing to name
    for table in (service, characteristic, descriptor):
        found = table.get(key)  # type: ignore[call-overload]
        if found:
            return str(found)
    return None


class SigPlugin:
    """Decodes, encodes and names Bluetooth SIG attributes (see the module docstring)."""

    @hookimpl
    def mcp_ble_decode_value(self, uuid: str, data: bytes) -> dict[str, Any] | None:
        return decode(uuid, data)

    @hookimpl
    def mcp_ble_encode_value(self, uuid: str, value: Any) -> bytes | None:
        library()  # the IEEE 11073 correction is in place before anything is built
        from .encode import encode  # imports bluetooth-sig: on first use, not at start

        return encode(uuid, value)

    @hookimpl
    def mcp_ble_uuid_name(self, uuid: str) -> str | None:
        return name(uuid)
