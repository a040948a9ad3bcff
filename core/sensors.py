"""Sensor readings from advertisements: decoded once per payload, kept per device, bounded.

Most BLE sensors broadcast their readings in service data or manufacturer data and are never
connected to. :class:`SensorStore` takes every advertisement the scan path hears (after the
tracker), asks the decoder plugins (hook ``mcp_ble_decode_advertisement``, first answer wins in
settings order) what the payload means, and keeps each device's latest reading per measurement
with the time it was heard.

This is the advertisement hot path, so the store does as little as it can:

- an advertisement with neither service data nor manufacturer data stops at the first check;
- a device repeating its previous payload (the common case: a sensor advertises several times a
  second and its values change every few seconds) is recognised by comparing the two payload
  dicts with the ones it sent last, and reuses that decode;
- any other payload is looked up in a bounded LRU cache keyed by (address, service data,
  manufacturer data, name), so a device alternating between a few payloads is decoded once per
  payload; only a miss reaches the decoders.

Readings are values the device sent, not the RSSI of one report: a decoder does not return
signal strength, so a repeated payload never changes a device's readings.

A reading may name the payload entry it was read from (``SensorReading.payload``: a service-data
UUID or a company id). The store keeps, per device, the bytes of each entry a decoder read
(:meth:`SensorStore.read`), so device lists can leave out the hex the readings stand for, and
show it again once the entry holds bytes no decoder read.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .models import Advertisement, SensorReading

log = logging.getLogger("mcp_ble.sensors")

#: What a decode gave: the readings, or ``None`` when no decoder knew the payload.
Decoded = tuple[SensorReading, ...] | None
#: A payload entry: a service-data UUID or a manufacturer-data company id.
Entry = str | int
Listener = Callable[[str], object]
_MISS: Any = object()


@dataclass(frozen=True, slots=True)
class DeviceReadings:
    """One device's readings heard within a window: (reading, heard_at) pairs, sorted by
    reading name. ``heard_at`` is on the app's clock (``BleApp.now``)."""

    address: str
    name: str | None
    readings: list[tuple[SensorReading, float]]
    last_heard: float


class _Device:
    __slots__ = (
        "decoded",
        "last_heard",
        "manufacturer_data",
        "name",
        "read",
        "readings",
        "service_data",
    )

    def __init__(self) -> None:
        self.name: str | None = None
        self.service_data: dict[str, bytes] | None = None
        self.manufacturer_data: dict[int, bytes] | None = None
        self.decoded: Decoded = None
        #: Latest reading per ``SensorReading.ident``, with when it was heard.
        self.readings: dict[str, tuple[SensorReading, float]] = {}
        #: Payload entry -> the bytes a decoder last read from it (readings naming it).
        self.read: dict[Entry, bytes] = {}
        self.last_heard = 0.0


class SensorStore:
    """Decoded readings per device. ``decode`` is the firstresult hook caller (or any function
    taking ``advertisement=``); ``capacity`` bounds the devices kept (the least recently heard
    goes first) and ``cache_size`` the payloads remembered."""

    def __init__(
        self,
        decode: Callable[..., list[SensorReading] | None] | None,
        capacity: int = 10_000,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.decode = decode
        #: Whether any decoder is enabled; the scan path skips the store when none is.
        self.enabled = decode is not None
        self.capacity = capacity
        self.cache_size = cache_size
        self.clock = clock
        self._devices: OrderedDict[str, _Device] = OrderedDict()
        self._cache: OrderedDict[tuple[Any, ...], Decoded] = OrderedDict()
        self._listeners: list[Listener] = []
        #: Payloads handed to the decoders (cache misses) and decoders that raised, since start.
        self.decodes = 0
        self.decode_errors = 0

    def __len__(self) -> int:
        """Devices whose payloads were seen (with or without readings)."""
        return len(self._devices)

    # ------------------------------------------------------------------ hot path

    def ingest(self, adv: Advertisement, now: float) -> bool:
        """Take one advertisement heard at ``now``; True when the device's readings changed
        (a new measurement, or a value different from the last one)."""
        service_data = adv.service_data
        manufacturer_data = adv.manufacturer_data
        if not service_data and not manufacturer_data:
            return False
        address = adv.address
        devices = self._devices
        device = devices.get(address)
        if device is None:
            device = devices[address] = _Device()
            if len(devices) > self.capacity:
                devices.popitem(last=False)
        else:
            devices.move_to_end(address)
        name = adv.name or device.name
        if (
            service_data == device.service_data
            and manufacturer_data == device.manufacturer_data
            and name == device.name
        ):
            decoded = device.decoded
        else:
            decoded = self._lookup(adv, name)
            device.service_data = service_data
            device.manufacturer_data = manufacturer_data
            device.name = name
            device.decoded = decoded
            if decoded:
                _note_read(device.read, decoded, service_data, manufacturer_data)
        if not decoded:
            return False
        device.last_heard = now
        readings = device.readings
        changed = False
        for reading in decoded:
            ident = reading.key or reading.measurement
            old = readings.get(ident)
            if old is None or (old[0] is not reading and old[0] != reading):
                changed = True
            readings[ident] = (reading, now)
        if changed:
            for listener in self._listeners:
                try:
                    listener(address)
                except Exception:
                    log.exception("sensor listener %r failed", listener)
        return changed

    def _lookup(self, adv: Advertisement, name: str | None) -> Decoded:
        """The decode of this payload: from the cache, or from the decoders on a miss."""
        key = (
            adv.address,
            tuple(adv.service_data.items()),
            tuple(adv.manufacturer_data.items()),
            name,
        )
        cache = self._cache
        decoded = cache.get(key, _MISS)
        if decoded is not _MISS:
            cache.move_to_end(key)
            return decoded  # type: ignore[no-any-return]
        if name is not None and adv.name is None:
            adv = replace(adv, name=name)
        decoded = self._decode(adv)
        cache[key] = decoded
        if len(cache) > self.cache_size:
            cache.popitem(last=False)
        return decoded

    def _decode(self, adv: Advertisement) -> Decoded:
        self.decodes += 1
        if self.decode is None:
            return None
        try:
            found = self.decode(advertisement=adv)
        except Exception as exc:
            # Cached as "not decoded" by the caller, so one bad payload is logged once.
            self.decode_errors += 1
            log.warning(
                "a decoder failed on an advertisement from %s: %s: %s",
                adv.address,
                type(exc).__name__,
                exc,
            )
            return None
        if found is None:
            return None
        if not isinstance(found, list | tuple) or not all(
            isinstance(r, SensorReading) for r in found
        ):
            self.decode_errors += 1
            log.warning(
                "a decoder returned %s for %s; expected a list of SensorReading or None",
                type(found).__name__,
                adv.address,
            )
            return None
        return tuple(found)

    # ------------------------------------------------------------------ listeners

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(address)`` whenever a device's readings change (in the scan path:
        keep it short, coalesce work elsewhere). An exception in it is logged."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    # ------------------------------------------------------------------ views

    def read(self, address: str) -> dict[Entry, bytes]:
        """The payload entries of the device that decoders turned into readings, each with the
        bytes read (the device's current entry may hold others since: then no reading stands
        for it). Empty when none named its entry."""
        device = self._devices.get(address)
        return device.read if device is not None else {}

    def latest(self, address: str) -> list[tuple[SensorReading, float]]:
        """The device's latest reading per measurement with when it was heard, by name."""
        device = self._devices.get(address)
        if device is None:
            return []
        return sorted(device.readings.values(), key=lambda pair: pair[0].ident)

    def measurements(self) -> set[str]:
        """Every measurement name among the readings held."""
        return {r.measurement for d in self._devices.values() for r, _ in d.readings.values()}

    def query(
        self, recent_s: float, measurement: str | None = None, name: str | None = None
    ) -> list[DeviceReadings]:
        """Devices with readings heard within ``recent_s`` seconds, the most recently heard
        first; only readings of ``measurement`` (exact, case-insensitive) if given, only devices
        whose name contains ``name`` (case-insensitive) if given."""
        cutoff = self.clock() - recent_s
        wanted = measurement.casefold() if measurement is not None else None
        part = name.casefold() if name is not None else None
        found: list[DeviceReadings] = []
        for address, device in reversed(self._devices.items()):
            if not device.readings or device.last_heard < cutoff:
                continue
            if part is not None and (device.name is None or part not in device.name.casefold()):
                continue
            readings = [
                pair
                for pair in device.readings.values()
                if pair[1] >= cutoff and (wanted is None or pair[0].measurement == wanted)
            ]
            if readings:
                readings.sort(key=lambda pair: pair[0].ident)
                found.append(DeviceReadings(address, device.name, readings, device.last_heard))
        found.sort(key=lambda d: d.last_heard, reverse=True)
        return found

    def forget_older_than(self, age_s: float) -> int:
        """Drop devices not heard for ``age_s`` seconds (with their cached payloads left to age
        out of the LRU); returns how many were dropped."""
        cutoff = self.clock() - age_s
        stale = [a for a, d in self._devices.items() if d.last_heard < cutoff]
        for address in stale:
            del self._devices[address]
        return len(stale)


def _note_read(
    read: dict[Entry, bytes],
    decoded: tuple[SensorReading, ...],
    service_data: dict[str, bytes],
    manufacturer_data: dict[int, bytes],
) -> None:
    """Remember the bytes of each entry a reading of ``decoded`` names as its payload."""
    for reading in decoded:
        entry = reading.payload
        if entry is None:
            continue
        data = service_data.get(entry) if isinstance(entry, str) else manufacturer_data.get(entry)
        if data is not None:
            read[entry] = data
