"""The ``sig`` decoder plugin: Bluetooth SIG characteristics and descriptors decoded, typed
values encoded, and UUIDs named, by the ``bluetooth-sig`` library (MIT), which parses the
characteristics of the SIG's GATT Specification Supplement from the SIG's own YAML registry.

- ``mcp_ble_decode_value``: every characteristic (and descriptor) the library parses, as flat
  fields named with their units (``plugins/sig/decode.py``). A value the library cannot parse
  (unknown UUID, too short, malformed) gets ``None``: the core shows hex and text.
- ``mcp_ble_encode_value``: ``plugins/sig/encode.py``.
- ``mcp_ble_uuid_name``: service, characteristic and descriptor names from the same registry,
  then from bluetooth-numbers' tables (which hold vendor UUIDs such as Nordic's UART too).

Nothing of the library is imported at start: importing it and loading its UUID registry takes
about 0.15 s on the first name asked, its characteristic classes about 0.4 s more on the first
value decoded or encoded (then 16-70 µs a value). The library's IEEE 11073 float handling is
corrected before any value is parsed or built (``ieee11073.py``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from uuid import UUID

from mcp_ble.core.hookspecs import hookimpl

from .decode import FieldUnits, flatten, snake, with_unit

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
            from bluetooth_sig.gatt.characteristics.registry import CharacteristicRegistry
            from bluetooth_sig.gatt.characteristics.utils.ieee11073_parser import (
                IEEE11073Parser,
            )
            from bluetooth_sig.gatt.descriptors.registry import DescriptorRegistry
            from bluetooth_sig.gatt.exceptions import SpecialValueDetectedError

            from .ieee11073 import install

            install(IEEE11073Parser)
            # A peer's malformed value is not a server problem: the library's warnings about
            # the values it could not parse would flood the log with every notification.
            logging.getLogger("bluetooth_sig").setLevel(logging.ERROR)
            _loaded["descriptors"] = DescriptorRegistry
            _loaded["special"] = SpecialValueDetectedError
            _loaded["characteristics"] = CharacteristicRegistry  # last: the "loaded" mark
    return _loaded


def _uuids() -> Any:
    """bluetooth-sig's registry of the SIG's UUIDs and their names."""
    registry = _loaded.get("uuids")
    if registry is None:
        with _lock:
            from bluetooth_sig.gatt.uuid_registry import get_uuid_registry

            registry = _loaded["uuids"] = get_uuid_registry()
    return registry


def _parser(uuid: str) -> tuple[Any, str, str, FieldUnits, bool] | None:
    try:
        return _parsers[uuid]
    except KeyError:
        pass
    lib = library()
    entry: tuple[Any, str, str, FieldUnits, bool] | None = None
    cls = lib["characteristics"].get_characteristic_class_by_uuid(uuid)
    if cls is not None:
        parser = cls()
        entry = (parser, snake(parser.name), parser.unit or "", FieldUnits(parser), False)
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
