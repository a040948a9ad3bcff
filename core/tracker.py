"""The device tracker: every advertiser heard, merged, bounded, cheap to update.

This is the advertisement hot path. A crowded room delivers thousands of reports per second, so
``ingest`` does as little as possible: one dict lookup, a few attribute stores, and it skips
re-merging payloads that did not change (identity before equality, as habluetooth does).
Records use ``__slots__`` to keep memory per tracked device small.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator

from .models import Advertisement

#: With several radios, a radio's last report counts toward the best radio for this long. Longer
#: than the slowest advertising interval (10.24 s, Core spec Vol 6, Part B, 4.4.2.2.1) with room
#: for lost packets; a radio that stopped hearing the device yields to one that still does.
RADIO_FRESH_S = 30.0
#: With several radios, each radio's RSSI of a device is smoothed: a report moves it this part of
#: the way (an exponentially weighted mean; with 2 dB of noise per report the level varies by
#: about 0.8 dB), so the best radio does not flip with each noisy report between two radios that
#: hear the device about as well. A radio's first report in RADIO_FRESH_S starts it afresh.
RSSI_SMOOTHING = 0.25


class DeviceRecord:
    """What we know about one advertiser. With several radios (``Advertisement.radio`` set),
    ``heard_by`` keeps (smoothed RSSI, last heard) per radio — bounded by the radios configured —
    and ``radio`` / ``rssi`` are the radio that hears it best recently and its RSSI there."""

    __slots__ = (
        "address",
        "connectable",
        "first_seen",
        "heard_by",
        "last_seen",
        "manufacturer_data",
        "name",
        "radio",
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
        self.radio: str | None = adv.radio or None
        self.heard_by: dict[str, tuple[float, float]] | None = (
            {adv.radio: (adv.rssi, now)} if adv.radio else None
        )
        self.tx_power = adv.tx_power
        self.connectable = adv.connectable
        self.service_uuids = adv.service_uuids
        self.manufacturer_data = adv.manufacturer_data
        self.service_data = adv.service_data
        self.first_seen = now
        self.last_seen = now
        self.seen_count = 1

    def merge(self, adv: Advertisement, now: float) -> None:
        if adv.radio:
            self._heard(adv.radio, adv.rssi, now)
        else:
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

    def _heard(self, radio: str, rssi: int, now: float) -> None:
        heard = self.heard_by
        if heard is None:
            heard = self.heard_by = {}
        before = heard.get(radio)
        level: float = rssi
        if before is not None and now - before[1] <= RADIO_FRESH_S:
            level = before[0] + (rssi - before[0]) * RSSI_SMOOTHING
        heard[radio] = (level, now)
        self._choose(now)

    def _choose(self, now: float) -> None:
        """The best radio: the strongest among those that heard it within RADIO_FRESH_S of
        the latest report (the latest report's radio always qualifies)."""
        heard = self.heard_by
        if not heard:
            self.radio = None
            return
        latest = max(t for _, t in heard.values())
        cutoff = min(now, latest) - RADIO_FRESH_S
        best, best_rssi = None, -1000.0
        for name, (rssi, at) in heard.items():
            if at >= cutoff and rssi > best_rssi:
                best, best_rssi = name, rssi
        self.radio, self.rssi = best, round(best_rssi)

    def forget_radio(self, radio: str, now: float) -> None:
        """A radio went away: it no longer counts as hearing this device."""
        if self.heard_by is not None and self.heard_by.pop(radio, None) is not None:
            self._choose(now)

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
            radio=self.radio or "",
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

    def forget_radio(self, radio: str) -> None:
        """A radio went away: drop its reports, so the best radio of each device it heard is
        one still there (devices only it heard keep their last-heard time and age out)."""
        now = self.clock()
        for record in self._devices.values():
            record.forget_radio(radio, now)

    def get(self, address: str) -> DeviceRecord | None:
        return self._devices.get(address)

    def heard_within(self, within_s: float) -> Iterator[DeviceRecord]:
        """Devices heard in the last ``within_s`` seconds, most recent first, unsorted by
        signal: the records are kept in the order last heard, so this stops at the first
        older one."""
        cutoff = self.clock() - within_s
        for record in reversed(self._devices.values()):
            if record.last_seen < cutoff:
                return
            yield record

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
