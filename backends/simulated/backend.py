"""The simulated backend: a world of virtual devices behind the same contract as a radio.

It is the project's measuring instrument, so its timing follows the physics (Core spec Vol 6,
Part B: Link Layer; Vol 3, Part F: ATT; :mod:`mcp_ble.core.theory` for the closed forms):

- Advertising: every device advertises at its interval plus a random 0-10 ms advDelay; the scanner
  hears an advertisement only inside its scan window, if it is not lost and its RSSI sample
  (mean + noise, drifting over time) reaches the sensitivity. A connected device does not advertise.
- Connecting: wait for a connectable advertisement the initiator hears, CONNECT_IND, the transmit
  window, then the ATT MTU exchange in the first two connection events. A device that no longer
  advertises cannot be connected: the attempt times out.
- Data: see :mod:`.link` - connection events, packets per event, data length, PHY air time, loss
  with retransmission, ATT MTU (payload MTU - 3), sequential ATT requests, long reads (Read Blob)
  and long writes (Prepare + Execute Write), write without response and notifications pipelined
  and bounded by buffers, supervision timeout when a device goes out of range.
- Faults from the world's ``[devices.faults]`` raise the error classes of ``core/errors.py``.
  The backend never retries: the core and the retry plugin decide that.

Time comes from a :mod:`.clock`: scaled real time, or a virtual clock (``time_scale = 0``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import math
import random
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mcp_ble.core import theory
from mcp_ble.core.backend import Backend, LinkInfo, NotifyCallback
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleTimeout,
    ConnectionFailed,
    DeviceNotFound,
    GattError,
    NotConnected,
    OperationInProgress,
    OutOfSlots,
    ValueTooLong,
)
from mcp_ble.core.models import (
    Advertisement,
    BackendInfo,
    GattCharacteristic,
    GattDescriptor,
    GattService,
    ScanFilter,
    copy_services,
)
from mcp_ble.core.sig import short_uuid

from .clock import IdleMode, ScaledClock, SimClock, Timer, VirtualClock
from .link import Link, LinkStats
from .world import CCCD, USER_DESCRIPTION, Characteristic, Device, ValueSource, World

#: A stream's tick that runs later than this many connection events (and ``SHED_LAG_MIN_S``)
#: behind simulated time sheds the older part of what fell due: the host cannot keep up.
SHED_LAG_EVENTS = 4
SHED_LAG_MIN_S = 0.02
#: Notifications handed to subscribers per turn of the event loop, per link.
DELIVERIES_PER_TURN = 256


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
        self.out_of_range_from = self._out_of_range_from()
        self.link: Link | None = None
        self.subscribers: dict[int, NotifyCallback] = {}
        self.streams: dict[int, Stream] = {}
        # Advertising payload, built once: reports share it, as a controller's cache would.
        self._uuids = tuple(spec.service_uuids)
        self._company = spec.company_data()
        self._service_data = dict(spec.service_data)

    def _out_of_range_from(self) -> float:
        """When the device leaves the scanner's range: the fault's time, or when its drifting
        mean RSSI crosses the sensitivity."""
        spec = self.spec
        t = spec.faults.out_of_range_at_s
        at = math.inf if t is None else t
        if spec.rssi_drift_db_per_s < 0:
            at = min(at, max(0.0, (self.sensitivity - spec.rssi) / spec.rssi_drift_db_per_s))
        elif spec.rssi < self.sensitivity:
            at = 0.0
        return at

    def rssi_sample(self, t: float) -> int:
        spec = self.spec
        mean = spec.rssi + spec.rssi_drift_db_per_s * t
        noisy = mean + self.rng.gauss(0, spec.rssi_noise_db) if spec.rssi_noise_db else mean
        return max(-127, min(20, round(noisy)))

    def advertisement(self, rssi: int) -> Advertisement:
        spec = self.spec
        return Advertisement(
            spec.address,
            rssi,
            spec.name,
            spec.tx_power,
            spec.connectable,
            self._uuids,
            self._company,
            self._service_data,
        )


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


class SimulatedBackend(Backend):
    """Virtual devices from a world file.

    ``time_scale``: 1 = real time, 0.01 = a hundred times faster, 0 = a virtual clock (simulated
    time jumps; ``idle`` says what it does while no operation waits). ``seed`` overrides the
    world's. Durations the caller passes (``timeout_s``) are simulated seconds."""

    requests_mtu = True

    def __init__(
        self,
        world: World,
        time_scale: float = 1.0,
        max_mtu: int = 517,
        seed: int | None = None,
        idle: IdleMode = "frozen",
    ) -> None:
        self.world = world
        self.time_scale = time_scale
        self.seed = world.seed if seed is None else seed
        self.max_mtu = min(max_mtu, world.link.max_mtu)
        self.clock: SimClock = VirtualClock(idle) if time_scale == 0 else ScaledClock(time_scale)
        self.stats = SimStats()
        self.devices: dict[str, SimDevice] = {
            spec.address: SimDevice(spec, world, self.max_mtu, self.seed) for spec in world.devices
        }
        self._advertisers = list(self.devices.values())
        self._connecting: set[str] = set()
        self._replay: Iterator[Advertisement] | None = None
        self._unplug_timer: Timer | None = None
        link = world.link
        self.slots = link.adapter_slots
        self._scan = (link.scan_interval_ms / 1000, link.scan_window_ms / 1000)
        self._initiator = (link.connect_scan_interval_ms / 1000, link.connect_scan_window_ms / 1000)

    def info(self) -> BackendInfo:
        return BackendInfo(
            "simulated",
            simulated=True,
            details={
                "world": self.world.name,
                "devices": str(len(self.devices)),
                "time_scale": f"{self.time_scale:g}",
                "clock": self.clock.describe(),
                "seed": str(self.seed),
            },
        )

    async def start(self) -> None:
        self.clock.start()
        lost_at = self.world.link.radio_lost_at_s
        if lost_at is not None:
            self._unplug_timer = self.clock.call_at(lost_at, self._unplug)

    def _unplug(self) -> None:
        """``[link] radio_lost_at_s``: the adapter goes, with every link on it."""
        for device in self.devices.values():
            if device.link is not None:
                self._reset_link(device)
        self.radio_lost(f"the simulated adapter was unplugged at t = {self.clock.now():.1f} s")

    async def reacquire(self) -> None:
        back_at = self.world.link.radio_back_at_s
        if back_at is None or self.clock.now() < back_at:
            raise BackendUnavailable(
                "The simulated adapter is still unplugged",
                "it comes back at radio_back_at_s of the world's [link], if set",
            )

    async def stop(self) -> None:
        if self._unplug_timer is not None:
            self._unplug_timer.cancel()
        for device in self.devices.values():
            if device.link is not None:
                self._reset_link(device)
        self.clock.stop()

    async def sleep(self, seconds: float) -> None:
        """Retry waits and other core waits run on the simulated clock."""
        await self.clock.sleep(seconds)

    async def sleep_background(self, seconds: float) -> None:
        """A background event on the simulated clock: it never moves virtual time itself."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.clock.call_at(self.clock.now() + seconds, wake)
        try:
            await future
        finally:
            timer.cancel()

    def now(self) -> float:
        """Simulated seconds since start."""
        return self.clock.now()

    def link_params(self, address: str) -> theory.LinkParams:
        """The parameters of the device's link (the negotiated MTU once connected)."""
        return self._device(address).params

    # ------------------------------------------------------------------ discovery

    def _heard(
        self, device: SimDevice, t: float, origin: float, scan: tuple[float, float]
    ) -> int | None:
        """The RSSI the scanner reports for the device's advertising event at ``t``, or None
        when it is not heard (window closed, packet lost, too weak)."""
        interval, window = scan
        if window < interval and (t - origin) % interval >= window:
            return None
        loss = device.params.loss_rate
        if loss and device.rng.random() < loss:
            return None
        rssi = device.rssi_sample(t)
        return rssi if rssi >= device.sensitivity else None

    def replay(self, advertisements: Iterable[Advertisement]) -> None:
        """Make the next scan yield ``advertisements`` (consumed lazily, as fast as the caller
        takes them) instead of the world's: the benchmark measures the server's own discovery
        pipeline this way, without the cost of simulating the radio."""
        self._replay = iter(advertisements)

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        """Advertising events of every device in time order; yield those the scanner hears."""
        if self._replay is not None:
            replay, self._replay = self._replay, None
            for adv in replay:
                yield adv
            return
        clock = self.clock
        start = clock.now()
        end = start + duration_s
        devices = self._advertisers
        heap = [(start + d.rng.uniform(0, d.adv_interval), i) for i, d in enumerate(devices)]
        heapq.heapify(heap)
        scan = self._scan
        delay = theory.ADV_DELAY_MAX_S
        airtime = theory.ADV_PDU_S
        sleep_until = clock.sleep_until
        stats = self.stats
        while heap:
            t, i = heap[0]
            if t > end:
                break
            device = devices[i]
            heapq.heapreplace(heap, (t + device.adv_interval + device.rng.uniform(0, delay), i))
            if device.link is not None or t >= device.out_of_range_from:
                continue  # a connected peripheral stops advertising
            rssi = self._heard(device, t, start, scan)
            if rssi is None:
                continue
            await sleep_until(t + airtime)
            stats.advertisements += 1
            yield device.advertisement(rssi)
        await sleep_until(end)

    # ------------------------------------------------------------------ connection

    def _device(self, address: str) -> SimDevice:
        device = self.devices.get(address)
        if device is None:
            raise DeviceNotFound(
                f"{address} is not in the simulated world '{self.world.name}'",
                "run ble_scan to list the devices that are advertising",
            )
        return device

    def _linked(self, address: str) -> tuple[SimDevice, Link]:
        device = self._device(address)
        if device.link is None:
            raise NotConnected(f"{address} is not connected", "call ble_connect first")
        return device, device.link

    def _connect_timeout(self, address: str, timeout_s: float, why: str) -> BleTimeout:
        return BleTimeout(
            f"Connecting to {address} timed out after {timeout_s:.1f} s (simulated): {why}",
            "the device may be out of range or no longer advertising: run ble_scan to check it "
            "is still there, or pass a larger timeout_s",
        )

    async def connect(self, address: str, timeout_s: float) -> None:
        device = self._device(address)
        if device.link is not None:
            return
        if address in self._connecting:
            raise OperationInProgress(
                f"A connection to {address} is already being made", "wait for it to finish"
            )
        if not device.spec.connectable:
            raise ConnectionFailed(
                f"{address} does not accept connections", "it advertises as not connectable"
            )
        self._connect_faults(device)
        used = sum(1 for d in self.devices.values() if d.link is not None) + len(self._connecting)
        if used >= self.slots:
            raise OutOfSlots(
                f"Connecting to {address} failed: the adapter has no free connection slot "
                f"({used} of {self.slots} in use)",
                "disconnect a device you no longer need, or retry in a few seconds",
            )
        self._connecting.add(address)
        try:
            await self._establish(device, timeout_s)
        finally:
            self._connecting.discard(address)

    def _connect_faults(self, device: SimDevice) -> None:
        errors = device.spec.faults.connect_errors
        rng = device.rng
        address = device.spec.address
        if errors.in_progress and rng.random() < errors.in_progress:
            self.stats.fault("in_progress")
            raise OperationInProgress(
                f"Connecting to {address} was refused: another operation is in progress "
                "(org.bluez.Error.InProgress)",
                "retry in a moment",
            )
        if errors.out_of_slots and rng.random() < errors.out_of_slots:
            self.stats.fault("out_of_slots")
            raise OutOfSlots(
                f"Connecting to {address} failed: the controller reports no free connection slot",
                "disconnect a device you no longer need, or retry in a few seconds",
            )
        if errors.not_found and rng.random() < errors.not_found:
            self.stats.fault("not_found")
            raise DeviceNotFound(
                f"Connecting to {address} failed: the adapter does not know the device any more",
                "run ble_scan so the adapter sees it again, then connect",
            )

    def _first_heard(self, device: SimDevice, start: float, deadline: float) -> float | None:
        """When the initiator first hears a connectable advertisement, or None before deadline."""
        rng = device.rng
        t = start + rng.uniform(0, device.adv_interval)
        while t <= deadline:
            if t >= device.out_of_range_from:
                return None
            if self._heard(device, t, start, self._initiator) is not None:
                return t
            t += device.adv_interval + rng.uniform(0, theory.ADV_DELAY_MAX_S)
        return None

    async def _establish(self, device: SimDevice, timeout_s: float) -> None:
        clock = self.clock
        spec = device.spec
        address = spec.address
        rng = device.rng
        start = clock.now()
        deadline = start + timeout_s
        timeout = spec.faults.connect_errors.timeout
        if timeout and rng.random() < timeout:
            self.stats.fault("timeout")
            await clock.sleep_until(deadline)
            raise self._connect_timeout(address, timeout_s, "the controller never completed it")
        heard = self._first_heard(device, start, deadline)
        if heard is None:
            await clock.sleep_until(deadline)
            raise self._connect_timeout(
                address, timeout_s, "no connectable advertisement was heard"
            )
        t0 = (
            heard
            + theory.ADV_PDU_S
            + theory.T_IFS_S
            + theory.CONNECT_IND_S
            + theory.TRANSMIT_WINDOW_DELAY_S
            + rng.uniform(0, theory.TRANSMIT_WINDOW_S)
        )
        mtu = device.offered_mtu
        chooser = self.mtu_chooser
        if chooser is not None:  # a plugin picks the MTU from the link's data length
            chosen = chooser(address, LinkInfo(device.params.data_length, mtu))
            mtu = mtu if chosen is None else max(23, min(chosen, mtu))
        if mtu != device.params.mtu:
            device.params = dataclasses.replace(device.params, mtu=mtu)
        link = Link(address, t0, device.params, device.supervision_s, rng, self.stats.radio)
        failure = spec.faults.connect_failure_rate
        aborted = bool(failure) and rng.random() < failure
        if aborted or t0 >= device.out_of_range_from:
            # No packet in the first six connection events: the connection failed to be
            # established, which BlueZ reports as le-connection-abort-by-local.
            failed_at = link.anchor(6)
            await clock.sleep_until(min(failed_at, deadline))
            if failed_at > deadline:
                raise self._connect_timeout(address, timeout_s, "the link was never established")
            if aborted:
                self.stats.fault("aborted")
            raise ConnectionFailed(
                f"Connecting to {address} failed: connection aborted by interference "
                "(le-connection-abort-by-local)",
                "retry; move closer to the device if it keeps failing",
            )
        # ATT MTU exchange: request in the first connection event, response in the next.
        request = link.central.send(t0, 3)
        done = link.peripheral.send(link.next_event_after(request), 3)
        if done > deadline:
            await clock.sleep_until(deadline)
            raise self._connect_timeout(address, timeout_s, "the MTU exchange did not finish")
        await clock.sleep_until(done)
        device.link = link
        self.stats.connects += 1
        if math.isfinite(device.out_of_range_from):
            self._schedule_loss(
                device,
                link,
                max(device.out_of_range_from, done) + link.supervision_s,
                "supervision timeout: the device went out of range",
            )
        at = spec.faults.disconnect_at_s
        if at is not None and at >= done:
            self._schedule_loss(device, link, at, "remote user terminated connection")

    async def disconnect(self, address: str) -> None:
        device = self.devices.get(address)
        if device is None or device.link is None:
            return
        link = device.link
        self._reset_link(device)
        # LL_TERMINATE_IND goes out in the next connection event.
        await self.clock.sleep_until(link.anchor(link.event_at_or_after(self.clock.now())))

    def _reset_link(self, device: SimDevice) -> None:
        link = device.link
        if link is not None:
            link.cancel_timers()
        for stream in device.streams.values():
            if stream.timer is not None:
                stream.timer.cancel()
        device.streams.clear()
        device.link = None
        device.subscribers.clear()
        for sim in device.chars.values():
            if sim.cccd_handle is not None:
                sim.descriptor_values[sim.cccd_handle][:] = b"\x00\x00"

    def _schedule_loss(self, device: SimDevice, link: Link, at: float, reason: str) -> None:
        if at < link.lost_at:
            link.lost_at = at
            link.lost_reason = reason
            link.timers.append(self.clock.call_at(at, self._lose, device, link))

    def _lose(self, device: SimDevice, link: Link) -> None:
        """The link is gone (the peripheral ended it, or supervision timed out)."""
        if device.link is link:
            self._reset_link(device)
            self.stats.links_lost += 1
            self.on_disconnect(device.spec.address, link.lost_reason)

    def drop_link(self, address: str, reason: str = "remote user terminated connection") -> None:
        """The peripheral ends the link now (it powered off, or walked out of range)."""
        device = self._device(address)
        if device.link is not None:
            device.link.lost_reason = reason
            self._lose(device, device.link)

    def mtu(self, address: str) -> int:
        return self._linked(address)[1].mtu

    # ------------------------------------------------------------------ ATT machinery

    async def _until(self, device: SimDevice, link: Link, t: float, what: str) -> None:
        """Wait until ``t`` unless the link is lost first (then raise ConnectionFailed)."""
        address = device.spec.address
        if t >= link.lost_at:
            await self.clock.sleep_until(link.lost_at)
            self._lose(device, link)
            raise ConnectionFailed(
                f"The link to {address} was lost during the {what}: {link.lost_reason}",
                "reconnect with ble_connect and try again",
            )
        await self.clock.sleep_until(t)
        if device.link is not link:
            raise ConnectionFailed(
                f"The link to {address} went down during the {what}"
                + (f": {link.lost_reason}" if link.lost_reason else ""),
                "reconnect with ble_connect and try again",
            )

    async def _transaction(
        self,
        device: SimDevice,
        link: Link,
        request_len: int,
        response_len: int,
        what: str,
        handler: Callable[[float], None] | None = None,
    ) -> None:
        """One ATT request and its response. The response leaves the peripheral in the event
        after the request arrived (later with the slow-response fault). ``handler(t)`` runs on
        the peripheral before it answers, at ``t``: what it queues goes out ahead of the response
        (a Zephyr-style write callback that notifies)."""
        clock = self.clock
        now = clock.now()
        request = link.central.send(now, request_len)
        ready = link.next_event_after(request)
        faults = device.spec.faults
        if faults.slow_response_ms and (
            faults.slow_response_rate >= 1 or device.rng.random() < faults.slow_response_rate
        ):
            self.stats.fault("slow_response")
            ready += faults.slow_response_ms / 1000
        if handler is not None:
            handler(ready)
        response = link.peripheral.send(ready, response_len)
        if response - now > theory.ATT_TRANSACTION_TIMEOUT_S:
            await self._until(device, link, now + theory.ATT_TRANSACTION_TIMEOUT_S, what)
            raise self._att_timeout(device, what)
        await self._until(device, link, response, what)

    def _att_timeout(self, device: SimDevice, what: str) -> BleTimeout:
        return BleTimeout(
            f"The {what} on {device.spec.address} timed out: no response within the ATT "
            f"transaction timeout ({theory.ATT_TRANSACTION_TIMEOUT_S:g} s, simulated)",
            "the device may be busy or out of range; check ble_connections and try again",
        )

    async def _op_faults(self, device: SimDevice, link: Link, what: str) -> None:
        """Transient errors of ``[devices.faults.errors]`` for one GATT operation."""
        errors = device.spec.faults.errors
        rng = device.rng
        address = device.spec.address
        if errors.in_progress and rng.random() < errors.in_progress:
            self.stats.fault("in_progress")
            raise OperationInProgress(
                f"The {what} on {address} was refused: another operation is in progress "
                "(org.bluez.Error.InProgress)",
                "retry in a few milliseconds",
            )
        if errors.aborted and rng.random() < errors.aborted:
            self.stats.fault("aborted")
            await self._until(device, link, link.next_event_after(self.clock.now()), what)
            raise ConnectionFailed(
                f"The {what} on {address} failed: the exchange was aborted by interference",
                "retry; move closer to the device if it keeps failing",
            )
        if errors.timeout and rng.random() < errors.timeout:
            self.stats.fault("timeout")
            now = self.clock.now()
            await self._until(device, link, now + theory.ATT_TRANSACTION_TIMEOUT_S, what)
            raise self._att_timeout(device, what)

    def _gatt_fault(self, device: SimDevice, sim: SimCharacteristic, op: str) -> int | None:
        for fault in device.spec.faults.gatt_errors:
            if fault.uuid == sim.spec.uuid and fault.op in (op, "any"):
                if fault.rate >= 1 or device.rng.random() < fault.rate:
                    self.stats.fault("gatt_error")
                    return fault.error
        return None

    def _op_done(self, device: SimDevice, link: Link) -> None:
        link.ops += 1
        limit = device.spec.faults.disconnect_after_ops
        if limit is not None and link.ops >= limit:
            # The peripheral's LL_TERMINATE_IND goes out in the next connection event.
            self._schedule_loss(
                device,
                link,
                link.next_event_after(self.clock.now()),
                "remote user terminated connection",
            )

    def _char(self, device: SimDevice, handle: int) -> SimCharacteristic:
        sim = device.chars.get(handle)
        if sim is None:
            raise GattError(0x01, "request")
        return sim

    # ------------------------------------------------------------------ GATT

    async def discover(self, address: str) -> list[GattService]:
        """Primary services (Read By Group Type), characteristics per service (Read By Type) and
        descriptors (Find Information), each a request/response while the server has more."""
        device, link = self._linked(address)
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "service discovery")
            mtu = link.mtu
            plan: list[tuple[int, int]] = []
            plan += self._listing([s.uuid for s in device.services], 6, 20, mtu)
            for service in device.services:
                uuids = [c.uuid for c in service.characteristics]
                plan += self._listing(uuids, 7, 21, mtu)
                for char in service.characteristics:
                    if char.descriptors:
                        plan += self._listing([d.uuid for d in char.descriptors], 4, 18, mtu)
            for request_len, response_len in plan:
                await self._transaction(
                    device, link, request_len, response_len, "service discovery"
                )
            self._op_done(device, link)
        return copy_services(device.services)

    @staticmethod
    def _listing(uuids: list[str], short: int, long: int, mtu: int) -> list[tuple[int, int]]:
        """(request, response) sizes to list ``uuids``: as many entries per response as fit the
        MTU (``short``/``long`` bytes for 16-bit/128-bit UUIDs), then a final 'not found'."""
        out = []
        for size in (short, long):
            count = sum(1 for u in uuids if (short_uuid(u) is not None) == (size == short))
            per = max(1, (mtu - 2) // size)
            while count > 0:
                n = min(per, count)
                out.append((7, 2 + n * size))
                count -= n
        out.append((7, 5))  # Error Response: Attribute Not Found ends the listing
        return out

    async def read(self, address: str, handle: int) -> bytes:
        device, link = self._linked(address)
        sim = self._char(device, handle)
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "read")
            code = (
                0x02 if "read" not in sim.spec.properties else self._gatt_fault(device, sim, "read")
            )
            if code:
                await self._transaction(device, link, 3, 5, "read")
                raise GattError(code, "read")
            value = sim.source.sample(self.clock.now())[: theory.MAX_ATTRIBUTE_LEN]
            rounds = theory.read_rounds(link.params, len(value))
            await self._transaction(device, link, 3, 1 + rounds[0], "read")
            for size in rounds[1:]:
                await self._transaction(device, link, 5, 1 + size, "long read")
            self._op_done(device, link)
        return value

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        device, link = self._linked(address)
        sim = self._char(device, handle)
        if not response:
            await self._write_without_response(device, link, sim, bytes(data))
            return
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "write")
            n = len(data)
            code = (
                0x03
                if "write" not in sim.spec.properties
                else self._gatt_fault(device, sim, "write")
            )
            if not code and n > sim.spec.max_length:
                code = 0x0D
            if code:
                await self._transaction(device, link, 3 + min(n, link.mtu - 3), 5, "write")
                raise GattError(code, "write")
            value = bytes(data)

            def apply(at: float) -> None:
                sim.source.store(value)
                if sim.spec.echo_to is not None:
                    self._echo(device, link, sim.spec.echo_to, value, at)

            if n <= link.mtu - 3:
                await self._transaction(device, link, 3 + n, 1, "write", apply)
            else:  # long write: Prepare Write requests (echoed back), then Execute Write
                chunk = link.mtu - 5
                for offset in range(0, n, chunk):
                    part = min(chunk, n - offset)
                    await self._transaction(device, link, 5 + part, 5 + part, "long write")
                await self._transaction(device, link, 2, 1, "long write", apply)
            self._op_done(device, link)

    async def _write_without_response(
        self, device: SimDevice, link: Link, sim: SimCharacteristic, data: bytes
    ) -> None:
        """Queue the packets in the controller's buffers and return; block only while the
        buffers are full (flow control), until the link has sent enough."""
        address = device.spec.address
        if "write-without-response" not in sim.spec.properties:
            raise GattError(0x03, "write without response")
        if len(data) > link.mtu - 3:
            raise ValueTooLong(
                f"{len(data)} bytes do not fit one write without response to {address} "
                f"(MTU {link.mtu}: at most {link.mtu - 3})",
                "split the value, or write with response",
            )
        await self._op_faults(device, link, "write without response")
        need = len(theory.fragments(3 + len(data), link.data_length))
        queue = link.in_flight
        now = self.clock.now()
        while queue and queue[0] <= now:
            queue.popleft()
        if len(queue) + need > link.tx_buffers:
            await self._until(device, link, queue[len(queue) + need - link.tx_buffers - 1], "write")
            now = self.clock.now()
            while queue and queue[0] <= now:
                queue.popleft()
        done: list[float] = []
        arrival = link.central.send(now, 3 + len(data), done)
        queue.extend(done)
        # The peripheral has no way to refuse a write without response: a bad one is dropped.
        if len(data) <= sim.spec.max_length and not self._gatt_fault(device, sim, "write"):
            sim.source.store(data)
            if sim.spec.echo_to is not None:
                self._echo(device, link, sim.spec.echo_to, data, arrival)
        self._op_done(device, link)

    async def drain(self, address: str) -> float:
        """Wait until every queued write without response has reached the device; return the
        simulated time the last one arrived (for throughput measurements)."""
        device, link = self._linked(address)
        if not link.in_flight:
            return self.clock.now()
        last = link.in_flight[-1]
        await self._until(device, link, last, "write without response")
        return last

    # ------------------------------------------------------------------ descriptors

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        device, link = self._linked(address)
        sim = device.descriptor_owner.get(handle)
        if sim is None:
            raise GattError(0x01, "descriptor read")
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "descriptor read")
            value = bytes(sim.descriptor_values[handle])
            await self._transaction(
                device, link, 3, 1 + min(len(value), link.mtu - 1), "descriptor read"
            )
            self._op_done(device, link)
        return value

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        device, link = self._linked(address)
        sim = device.descriptor_owner.get(handle)
        if sim is None:
            raise GattError(0x01, "descriptor write")
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "descriptor write")
            code = None
            if not sim.descriptor_writable[handle]:
                code = 0x03
            elif handle == sim.cccd_handle and len(data) != 2:
                code = 0x0D
            await self._transaction(
                device, link, 3 + len(data), 5 if code else 1, "descriptor write"
            )
            if code:
                raise GattError(code, "descriptor write")
            sim.descriptor_values[handle][:] = data
            self._op_done(device, link)

    # ------------------------------------------------------------------ notifications

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        device, link = self._linked(address)
        sim = self._char(device, handle)
        if sim.cccd_handle is None:
            raise GattError(0x03, "subscription")
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "subscription")
            code = self._gatt_fault(device, sim, "subscribe")
            await self._transaction(device, link, 5, 5 if code else 1, "subscription")
            if code:
                raise GattError(code, "subscription")
            enable = b"\x01\x00" if "notify" in sim.spec.properties else b"\x02\x00"
            sim.descriptor_values[sim.cccd_handle][:] = enable
            device.subscribers[handle] = callback
            self._start_stream(device, link, sim)
            self._op_done(device, link)

    async def stop_notify(self, address: str, handle: int) -> None:
        device, link = self._linked(address)
        sim = self._char(device, handle)
        device.subscribers.pop(handle, None)
        self._stop_stream(device, handle)
        async with link.att:
            self._linked(address)
            await self._transaction(device, link, 5, 1, "unsubscription")
            if sim.cccd_handle is not None:
                sim.descriptor_values[sim.cccd_handle][:] = b"\x00\x00"
            self._op_done(device, link)

    def _rate(self, device: SimDevice, sim: SimCharacteristic, t: float) -> float:
        """Notifications per second the peripheral generates at ``t``."""
        faults = device.spec.faults
        if faults.notify_storm_hz and t >= faults.notify_storm_at_s:
            return faults.notify_storm_hz
        return sim.spec.notify_hz if sim.spec.generator is not None else 0.0

    def _start_stream(self, device: SimDevice, link: Link, sim: SimCharacteristic) -> None:
        self._stop_stream(device, sim.handle)
        now = self.clock.now()
        rate = self._rate(device, sim, now)
        storm = device.spec.faults
        if rate > 0:
            first = now + 1 / rate
        elif storm.notify_storm_hz and storm.notify_storm_at_s > now:
            first = storm.notify_storm_at_s
        else:
            return
        stream = Stream(sim.handle, first)
        device.streams[sim.handle] = stream
        stream.timer = self.clock.call_at(first, self._tick, device, link, sim, stream)

    def _stop_stream(self, device: SimDevice, handle: int) -> None:
        stream = device.streams.pop(handle, None)
        if stream is not None and stream.timer is not None:
            stream.timer.cancel()

    def _tick(self, device: SimDevice, link: Link, sim: SimCharacteristic, stream: Stream) -> None:
        """Generate the notifications that fell due; fast streams are batched per connection
        event (their timing on the air comes from the link, not from this tick).

        The work of one tick is bounded, whatever the rate: while the peripheral's buffers are
        full, every notification due before the first buffer frees is dropped in one step (as
        its notify call would fail; its value is not generated). A tick that runs late because
        the host cannot keep up with simulated time (a storm at a fast time scale) sheds what
        fell due before its last few connection events, counted as dropped and as shed."""
        if device.link is not link or device.streams.get(sim.handle) is not stream:
            return
        now = self.clock.now()
        horizon = now + 1e-12
        shed_before = now - max(SHED_LAG_EVENTS * link.interval, SHED_LAG_MIN_S)
        payload = link.mtu - 3
        faults = device.spec.faults
        queue = link.notify_queue
        stats = link.stats
        while stream.next_t <= horizon:
            t = stream.next_t
            rate = self._rate(device, sim, t)
            if rate <= 0:
                if faults.notify_storm_hz and faults.notify_storm_at_s > t:
                    stream.next_t = faults.notify_storm_at_s
                    continue
                device.streams.pop(sim.handle, None)
                return
            while queue and queue[0] <= t:
                queue.popleft()
            late = t < shed_before
            if late or len(queue) >= link.tx_buffers:
                until = shed_before if late else queue[0]
                if faults.notify_storm_hz and t < faults.notify_storm_at_s:
                    until = min(until, faults.notify_storm_at_s)  # the rate changes there
                # Those before ``until`` (at least this one), but none beyond ``now``.
                count = math.ceil((until - t) * rate - 1e-9)
                count = max(1, min(count, math.floor(max(0.0, now - t) * rate + 1e-9) + 1))
                stats.notifications_dropped += count
                if late:
                    stats.notifications_shed += count
                stream.next_t = t + count / rate
                continue
            self._notify(device, link, sim, sim.source.sample(t)[:payload], t)
            stream.next_t = t + 1 / rate
        at = max(stream.next_t, now + link.interval)
        stream.timer = self.clock.call_at(at, self._tick, device, link, sim, stream)

    def _notify(
        self, device: SimDevice, link: Link, sim: SimCharacteristic, data: bytes, ready: float
    ) -> None:
        """Queue one notification (or indication) at the peripheral; drop it when the
        peripheral's buffers are full, as a real stack's notify call fails then."""
        queue = link.notify_queue
        while queue and queue[0] <= ready:
            queue.popleft()
        stats = link.stats
        if len(queue) >= link.tx_buffers:
            stats.notifications_dropped += 1
            return
        indicate = "notify" not in sim.spec.properties
        if indicate:  # one indication in flight: the next waits for the confirmation
            ready = max(ready, link.indication_free_at)
        delivered = link.peripheral.send(ready, 3 + len(data))
        if indicate:
            link.indication_free_at = link.next_event_after(delivered) + 1e-6
        queue.append(delivered)
        link.deliveries.append((delivered, sim.handle, data))
        if link.delivery_timer is None:
            link.delivery_timer = self.clock.call_at(delivered, self._deliver, device, link)

    def _deliver(self, device: SimDevice, link: Link) -> None:
        """Hand the notifications that have arrived to their subscribers, in order: one timer
        per link, at most ``DELIVERIES_PER_TURN`` per turn of the event loop."""
        link.delivery_timer = None
        if device.link is not link:
            link.deliveries.clear()
            return
        pending = link.deliveries
        now = self.clock.now() + 1e-12
        for _ in range(DELIVERIES_PER_TURN):
            if not pending or pending[0][0] > now:
                break
            _, handle, data = pending.popleft()
            callback = device.subscribers.get(handle)
            if callback is not None:
                link.stats.notifications_delivered += 1
                callback(data)
            if device.link is not link:  # a subscriber's callback may end the link
                pending.clear()
                return
        if pending:
            at = max(pending[0][0], self.clock.now())
            link.delivery_timer = self.clock.call_at(at, self._deliver, device, link)

    def _echo(
        self, device: SimDevice, link: Link, target_uuid: str, data: bytes, at: float
    ) -> None:
        """A UART-style loopback: what was written comes back as notifications."""
        payload = link.mtu - 3
        for handle, sim in device.chars.items():
            if sim.spec.uuid == target_uuid and handle in device.subscribers:
                for i in range(0, len(data), payload):
                    self._notify(device, link, sim, data[i : i + payload], at)
