"""The simulated world's devices as the radio keeps them: each one's characteristics, streams,
advertising and RSSI over time, and the counters of what the radio did."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from mcp_ble.core.backend import NotifyCallback
from mcp_ble.core.models import (
    Advertisement,
    GattCharacteristic,
    GattDescriptor,
    GattService,
)

from . import theory
from .clock import Timer
from .link import Link, LinkStats
from .sources import AdvertSchedule, ValueSource
from .world import CCCD, USER_DESCRIPTION, Characteristic, Device, World


@dataclass
class SimCharacteristic:
    spec: Characteristic
    handle: int
    source: ValueSource
    cccd_handle: int | None
    descriptor_values: dict[int, bytearray] = field(default_factory=dict)
    descriptor_writable: dict[int, bool] = field(default_factory=dict)


@dataclass
class Stream:
    """Periodic notifications of one subscribed characteristic."""

    handle: int
    next_t: float
    timer: Timer | None = None


class SimDevice:
    """One virtual peripheral: its world entry, GATT database, radio parameters and link."""

    def __init__(self, spec: Device, world: World, max_mtu: int, seed: int) -> None:
        self.spec = spec
        # Each device draws from its own generator, so what happens to one device does not
        # shift the random numbers of another.
        self.rng = random.Random(f"{seed}:{spec.address}")
        self.services, self.chars, self.descriptor_owner = build_gatt(spec, self.rng)
        link = world.link
        over = spec.link
        self.params = theory.LinkParams(
            interval_s=(over.connection_interval_ms or link.connection_interval_ms) / 1000,
            phy=theory.phy_name(over.phy or link.phy),
            mtu=min(max_mtu, link.max_mtu, spec.mtu),
            data_length=over.data_length or link.data_length,
            packets_per_event=over.packets_per_event or link.packets_per_event,
            loss_rate=link.loss_rate if over.loss_rate is None else over.loss_rate,
            tx_buffers=link.tx_buffers,
        )
        #: The largest MTU this device's link can get (the adapter's, the world's, the device's).
        self.offered_mtu = self.params.mtu
        self.supervision_s = (over.supervision_timeout_ms or link.supervision_timeout_ms) / 1000
        self.adv_interval = spec.adv_interval_ms / 1000
        self.sensitivity = link.sensitivity_dbm
        self.out_of_range_from = out_of_range_from(spec, self.sensitivity)
        self.link: Link | None = None
        #: The radio (simulated backend) holding the link.
        self.owner: object | None = None
        self.subscribers: dict[int, NotifyCallback] = {}
        self.streams: dict[int, Stream] = {}
        # Advertising payloads, built once: reports share them, as a controller's cache would.
        self._uuids = tuple(spec.service_uuids)
        self.adverts = AdvertSchedule(spec)

    def rssi_sample(self, t: float, rng: random.Random | None = None, loss_db: float = 0.0) -> int:
        """An RSSI sample at ``t``; a radio of several draws with its own ``rng`` and hears the
        device ``loss_db`` weaker (path loss)."""
        spec = self.spec
        mean = spec.rssi - loss_db + spec.rssi_drift_db_per_s * t
        if spec.rssi_noise_db:
            mean += (rng or self.rng).gauss(0, spec.rssi_noise_db)
        return max(-127, min(20, round(mean)))

    def advertisement(self, rssi: int, t: float) -> Advertisement:
        """The advertisement heard at simulated time ``t`` with ``rssi``."""
        spec = self.spec
        company, service_data = self.adverts.at(t)
        return Advertisement(
            spec.address,
            rssi,
            spec.name,
            spec.tx_power,
            spec.connectable,
            self._uuids,
            company,
            service_data,
        )


def out_of_range_from(spec: Device, sensitivity: int, loss_db: float = 0.0) -> float:
    """When the device leaves a scanner's range: the fault's time, or when its drifting mean
    RSSI (``loss_db`` weaker at this scanner) crosses the sensitivity."""
    t = spec.faults.out_of_range_at_s
    at = math.inf if t is None else t
    rssi = spec.rssi - loss_db
    if spec.rssi_drift_db_per_s < 0:
        at = min(at, max(0.0, (sensitivity - rssi) / spec.rssi_drift_db_per_s))
    elif rssi < sensitivity:
        at = 0.0
    return at


def build_gatt(
    device: Device, rng: random.Random
) -> tuple[list[GattService], dict[int, SimCharacteristic], dict[int, SimCharacteristic]]:
    """Lay out the device's GATT database with handles as a real server would:
    service declaration, then per characteristic a declaration, the value, its descriptors."""
    services: list[GattService] = []
    chars: dict[int, SimCharacteristic] = {}
    owners: dict[int, SimCharacteristic] = {}
    handle = 0
    for svc in device.services:
        handle += 1
        service = GattService(svc.uuid, handle)
        for spec in svc.characteristics:
            handle += 2  # declaration, then value
            value_handle = handle
            sim = SimCharacteristic(spec, value_handle, ValueSource(spec, rng), None)
            descriptors: list[GattDescriptor] = []
            if "notify" in spec.properties or "indicate" in spec.properties:
                handle += 1
                sim.cccd_handle = handle
                sim.descriptor_values[handle] = bytearray(2)
                sim.descriptor_writable[handle] = True
                descriptors.append(GattDescriptor(CCCD, handle))
            if spec.description is not None:
                handle += 1
                sim.descriptor_values[handle] = bytearray(spec.description.encode())
                sim.descriptor_writable[handle] = False
                descriptors.append(GattDescriptor(USER_DESCRIPTION, handle))
            for extra in spec.descriptors:
                handle += 1
                sim.descriptor_values[handle] = bytearray(extra.value)
                sim.descriptor_writable[handle] = extra.writable
                descriptors.append(GattDescriptor(extra.uuid, handle))
            for desc in descriptors:
                owners[desc.handle] = sim
            chars[value_handle] = sim
            service.characteristics.append(
                GattCharacteristic(
                    spec.uuid, value_handle, tuple(spec.properties), descriptors, svc.uuid
                )
            )
        services.append(service)
    return services, chars, owners


@dataclass
class SimStats:
    """Counters of what the simulated radio did (``SimulatedBackend.stats``)."""

    advertisements: int = 0
    connects: int = 0
    links_lost: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    radio: LinkStats = field(default_factory=LinkStats)

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
