"""The one adapter between the sensor-state-data parser family and mcp-ble's readings.

bthome-ble, xiaomi-ble, govee-ble, inkbird-ble, qingping-ble, ruuvitag-ble, sensorpush-ble,
thermopro-ble and bluemaestro-ble (the parsers Home Assistant uses) share one shape: a per-device
``BluetoothData`` object whose ``update(service_info)`` returns a ``SensorUpdate`` of keyed values
with descriptions (device class, unit). :class:`SensorStatePlugin` runs one of them per device
and turns its update into :class:`~mcp_ble.core.models.SensorReading` s; each decoder plugin
names its library, its parser and, where the format has a fixed home, the service UUIDs or
company ids worth trying.

A parser does not say which payload entry it read, so the adapter names it where only one can
be: the one entry of the advertisement among the plugin's UUIDs and company ids, or, for a
plugin trying every payload (those parsers read manufacturer data), the advertisement's one
manufacturer-data entry. Its value readings carry that entry as their ``payload``; with two
candidates they carry none, and the raw entries stay shown.

Of the decoders, only this module uses ``habluetooth`` (every parser of the family requires it;
the esphome backend uses it too). Nothing here imports a parser library, ``habluetooth``
or ``sensor_state_data`` at import time: every installed plugin's module is imported to list
it, and xiaomi-ble alone takes about 0.3 s to import (its cloud client brings aiohttp). The
plugins fail to load (naming their extra) when their library is not installed; the library is
imported when an app that enables the plugin starts (:meth:`SensorStatePlugin.mcp_ble_startup`).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import OrderedDict
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from ...core.errors import ConfigError
from ...core.hookspecs import hookimpl
from ...core.models import Advertisement, SensorReading

log = logging.getLogger("mcp_ble.decoders")

#: Keys a parser reports that are not values the device sent: the RSSI of the report (already on
#: every device) and BTHome's packet counter (it changes with every packet, the readings do not).
SKIPPED_KEYS = frozenset({"signal_strength", "packet_id"})

#: Per-device parser objects kept per plugin (the least recently used goes first; about 6 kB
#: each for bthome-ble), so memory stays bounded in a crowd. One evicted is made anew.
MAX_PARSERS = 2048


def plain(value: Any) -> float | int | str | bool | None:
    """A parser's native value as JSON-friendly data: Decimal to float, dates as ISO text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@cache
def _service_info_types() -> tuple[Any, Any]:
    """habluetooth's service info and bleak's device classes, imported on first use."""
    from bleak.backends.device import BLEDevice
    from habluetooth import BluetoothServiceInfoBleak

    return BluetoothServiceInfoBleak, BLEDevice


def service_info(adv: Advertisement) -> Any:
    """The advertisement as the parser family reads it (a habluetooth
    ``BluetoothServiceInfoBleak``). A report without a name gets its address as the name, as
    Home Assistant's scanners give it; ``time`` is when it was decoded."""
    service_info_type, device_type = _service_info_types()
    return service_info_type(
        adv.name or adv.address,
        adv.address,
        adv.rssi,
        adv.manufacturer_data,
        adv.service_data,
        list(adv.service_uuids),
        "mcp-ble",
        device_type(adv.address, adv.name, None),
        None,
        adv.connectable,
        time.monotonic(),
        adv.tx_power,
    )


def readings_of(update: Any, source: str, payload: str | int | None = None) -> list[SensorReading]:
    """The readings in a ``SensorUpdate``: sensor and binary sensor values, named by their
    device class (``temperature``) with the parser's key (``temperature_probe_1``) beside it,
    each read from the entry ``payload`` (None: not known)."""
    found: list[SensorReading] = []
    for values, descriptions in (
        (update.entity_values, update.entity_descriptions),
        (update.binary_entity_values, update.binary_entity_descriptions),
    ):
        for device_key, sensor_value in values.items():
            key = str(getattr(device_key.key, "value", device_key.key))
            if key in SKIPPED_KEYS:
                continue
            value = plain(sensor_value.native_value)
            if value is None:
                continue
            description = descriptions.get(device_key)
            device_class = getattr(description, "device_class", None)
            measurement = str(getattr(device_class, "value", device_class) or key)
            unit = getattr(description, "native_unit_of_measurement", None)
            if device_key.device_id is not None:
                key = f"{key}_{device_key.device_id}"
            found.append(
                SensorReading(
                    measurement,
                    value,
                    str(getattr(unit, "value", unit)) if unit else None,
                    source,
                    key,
                    payload,
                )
            )
    return found


#: The ``encryption`` reading of a device that sends plaintext although a key is set for it
#: (bthome-ble then ignores its values: remove the key to read them).
DOWNGRADED = "not encrypted (key set: values ignored)"


def encryption_state(parser: Any) -> str | None:
    """For a device that encrypts its advertisements (BTHome and Xiaomi parsers say so):
    ``"decrypted"``, ``"no key"`` (give it in the plugin's ``keys``) or ``"key wrong"``; for
    one sending plaintext while a key is set, :data:`DOWNGRADED`."""
    scheme = getattr(parser, "encryption_scheme", None)
    if scheme is None or getattr(scheme, "value", scheme) == "none":
        return None
    if not getattr(parser, "bindkey", None):
        return "no key"
    return "decrypted" if getattr(parser, "bindkey_verified", False) else "key wrong"


#: sensor-state-data keeps what each update set in these dicts and returns them as the update:
#: they are never emptied, so an update would also carry every value of earlier payloads.
_UPDATE_DICTS = (
    "_sensor_values_updates",
    "_sensor_descriptions_updates",
    "_binary_sensor_values_updates",
    "_binary_sensor_descriptions_updates",
)


def forget_previous_values(parser: Any) -> None:
    """Empty the parser's per-update dicts, so its next update holds only the values of that
    payload: a sensor that sends its temperature and its humidity in different packets (Xiaomi,
    BTHome) must not have its last temperature reported as heard again with every humidity
    packet, and a payload must decode the same whatever came before it (decodes are cached per
    payload). The parser's device state (keys, counters) is left alone."""
    for name in _UPDATE_DICTS:
        values = getattr(parser, name, None)
        if isinstance(values, dict):
            values.clear()


def import_library(plugin: str, library: str, module: str) -> None:
    """Import a decoder's library when an app enabling it starts. One installed but broken
    (a dependency of its own missing) stops the start with ConfigError naming the extra."""
    try:
        importlib.import_module(module)
        _service_info_types()
    except ImportError as exc:
        raise ConfigError(
            f"plugin '{plugin}' cannot start: importing {library} failed ({exc}); "
            f"pip install 'mcp-ble[{plugin}]'"
        ) from None


class SensorStatePlugin:
    """A decoder plugin on one sensor-state-data parser library. Subclasses set ``source`` (the
    format, also the plugin's name), ``library`` (its distribution) and ``module`` (the module
    :meth:`new_parser` imports), ``service_uuids`` and ``manufacturer_ids`` (what to try;
    empty sets: try every payload, for formats recognised by name or by varying company ids) and
    implement :meth:`new_parser`."""

    source: ClassVar[str] = ""
    library: ClassVar[str] = ""
    module: ClassVar[str] = ""
    #: The library's own device classes beside sensor-state-data's (enums whose values name
    #: measurements, named in the library's ``const`` module), so :attr:`measurements` knows
    #: every name its readings can have.
    device_classes: ClassVar[tuple[str, ...]] = ()
    service_uuids: ClassVar[frozenset[str]] = frozenset()
    manufacturer_ids: ClassVar[frozenset[int]] = frozenset()

    def __init__(self) -> None:
        self._parsers: OrderedDict[str, Any] = OrderedDict()

    @property
    def measurements(self) -> frozenset[str]:
        """Every measurement name this plugin's readings can have: the device classes of
        sensor-state-data and of the library (a reading is named by its device class), less the
        keys never reported, and ``encryption``."""
        from sensor_state_data import BinarySensorDeviceClass, SensorDeviceClass

        const = importlib.import_module(f"{self.module}.const") if self.device_classes else None
        own = [getattr(const, name) for name in self.device_classes]
        names = {
            str(member.value)
            for enum in (SensorDeviceClass, BinarySensorDeviceClass, *own)
            for member in enum
        }
        return frozenset((names - SKIPPED_KEYS) | {"encryption"})

    def new_parser(self, address: str) -> Any:
        """A fresh parser object for one device (the library is imported here, so the plugin's
        module stays cheap to import)."""
        raise NotImplementedError

    @hookimpl
    def mcp_ble_startup(self, app: Any) -> None:
        # Imported now, not on the first advertisement (xiaomi-ble: ~0.3 s) mid-scan.
        import_library(self.source, self.library, self.module)

    def payload_of(self, adv: Advertisement) -> str | int | None:
        """The one entry of ``adv`` the parser can have read, or None when there are several."""
        if self.service_uuids or self.manufacturer_ids:
            entries: list[str | int] = [u for u in adv.service_data if u in self.service_uuids]
            entries += [c for c in adv.manufacturer_data if c in self.manufacturer_ids]
        else:
            entries = list(adv.manufacturer_data)
        return entries[0] if len(entries) == 1 else None

    def might_be_mine(self, adv: Advertisement) -> bool:
        if not self.service_uuids and not self.manufacturer_ids:
            return True
        return any(u in self.service_uuids for u in adv.service_data) or any(
            c in self.manufacturer_ids for c in adv.manufacturer_data
        )

    def _keep(self, address: str, parser: Any, known: bool) -> None:
        parsers = self._parsers
        if known:
            parsers.move_to_end(address)
        else:
            parsers[address] = parser
            if len(parsers) > MAX_PARSERS:
                parsers.popitem(last=False)

    @hookimpl
    def mcp_ble_decode_advertisement(
        self, advertisement: Advertisement
    ) -> list[SensorReading] | None:
        if not self.might_be_mine(advertisement):
            return None
        address = advertisement.address
        parser = self._parsers.get(address)
        known = parser is not None
        if parser is None:
            parser = self.new_parser(address)
        forget_previous_values(parser)
        try:
            update = parser.update(service_info(advertisement))
        except Exception as exc:  # a malformed payload: not a reading, not a server error
            log.debug("%s parser refused %s: %s: %s", self.source, address, type(exc).__name__, exc)
            return None
        if getattr(parser, "downgrade_detected", False):
            # bthome-ble ignores a plaintext payload from a device it has a key for (a spoofed
            # device could send any values unauthenticated); mcp-ble keeps that protection and
            # says so, instead of the device's readings vanishing with a line on stderr.
            self._keep(address, parser, known)
            return [SensorReading("encryption", DOWNGRADED, None, self.source, "encryption")]
        if not update.devices:
            return None  # the parser recognised no device in it: not this format
        if not (self.service_uuids or self.manufacturer_ids) and not (
            update.entity_values or update.binary_entity_values
        ):
            # A plugin trying every payload, whose parser found no value in this one, has not
            # recognised it (govee-ble names itself the manufacturer of any payload): the next
            # decoder is asked instead of the search ending with no readings.
            return None
        self._keep(address, parser, known)
        readings = readings_of(update, self.source, self.payload_of(advertisement))
        state = encryption_state(parser)
        # The agent learns why an encrypted device gives no values; not a value of the payload,
        # so with no key its bytes stay shown.
        if state is not None:
            readings.append(SensorReading("encryption", state, None, self.source, "encryption"))
        return readings
