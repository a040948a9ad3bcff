"""The device tracker: every advertiser heard, merged, bounded, cheap to update.

This is the advertisement hot path. A crowded room delivers thousands of reports per second, so
``ingest`` does as little as possible: one dict lookup, a few attribute stores, and it skips
re-merging payloads that did not change (identity before equality, as habluetooth does).
Records use ``__slots__`` to keep memory per tracked device small.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from .models import Advertisement


class DeviceRecord:
    """What we know about one advertiser."""

    __slots__ = (
        "address",
        "connectable",
        "first_seen",
        "last_seen",
        "manufacturer_data",
        "name",
        "rssi",
        "seen_count",
        "service_data",
        "service_uuids",
        "tx_power",
    )

    def __init__(self, adv: Advertisement, now: float) -> None:
        self.address = adv.address
        self.name = adv.name
        self.rssi = adv.rssi
        self.tx_power = adv.tx_power
        self.connectable = adv.connectable
        self.service_uuids = adv.service_uuids
        self.manufacturer_data = adv.manufacturer_data
        self.service_data = adv.service_data
        self.first_seen = now
        self.last_seen = now
        self.seen_count = 1

    def merge(self, adv: Advertisement, now: float) -> None:
        self.rssi = adv.rssi
        self.last_seen = now
        self.seen_count += 1
        # A scan response or a later report may carry fields the first one lacked.
        if adv.name is not None:
            self.name = adv.name
        if adv.tx_power is not None:
            self.tx_power = adv.tx_power
        self.connectable = adv.connectable
        if adv.service_uuids and adv.service_uuids is not self.service_uuids:
            if adv.service_uuids != self.service_uuids:
                merged = dict.fromkeys(self.service_uuids)
                merged.update(dict.fromkeys(adv.service_uuids))
                self.service_uuids = tuple(merged)
        if adv.manufacturer_data and adv.manufacturer_data is not self.manufacturer_data:
            if adv.manufacturer_data != self.manufacturer_data:
                self.manufacturer_data = {**self.manufacturer_data, **adv.manufacturer_data}
        if adv.service_data and adv.service_data is not self.service_data:
            if adv.service_data != self.service_data:
                self.service_data = {**self.service_data, **adv.service_data}

    def as_advertisement(self) -> Advertisement:
        return Advertisement(
            address=self.address,
            rssi=self.rssi,
            name=self.name,
            tx_power=self.tx_power,
            connectable=self.connectable,
            service_uuids=self.service_uuids,
            manufacturer_data=self.manufacturer_data,
            service_data=self.service_data,
        )


class AdvertisementTracker:
    """Devices by address, least recently heard first; at most ``capacity`` of them."""

    def __init__(self, capacity: int = 10_000, clock=time.monotonic) -> None:
        self.capacity = capacity
        self.clock = clock
        self._devices: OrderedDict[str, DeviceRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._devices)

    def ingest(self, adv: Advertisement) -> tuple[DeviceRecord, bool]:
        """Merge one report; return the record and whether the device is new."""
        now = self.clock()
        devices = self._devices
        record = devices.get(adv.address)
        if record is not None:
            record.merge(adv, now)
            devices.move_to_end(adv.address)
            return record, False
        record = DeviceRecord(adv, now)
        devices[adv.address] = record
        if len(devices) > self.capacity:
            devices.popitem(last=False)
        return record, True

    def get(self, address: str) -> DeviceRecord | None:
        return self._devices.get(address)

    def recent(self, within_s: float) -> list[DeviceRecord]:
        """Devices heard in the last ``within_s`` seconds, strongest signal first."""
        cutoff = self.clock() - within_s
        found = [r for r in reversed(self._devices.values()) if r.last_seen >= cutoff]
        found.sort(key=lambda r: r.rssi, reverse=True)
        return found

    def forget_older_than(self, age_s: float) -> int:
        """Drop devices not heard for ``age_s`` seconds; return how many were dropped."""
        cutoff = self.clock() - age_s
        dropped = 0
        while self._devices:
            address, record = next(iter(self._devices.items()))
            if record.last_seen >= cutoff:
                break
            del self._devices[address]
            dropped += 1
        return dropped
