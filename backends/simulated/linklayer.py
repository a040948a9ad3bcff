"""The simulated radio below ATT: its clock, the adapter coming and going, advertising and
scans, connecting, and links that end."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import math
from collections.abc import AsyncIterator, Iterable, Iterator

from mcp_ble.core.backend import Backend, LinkInfo
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleTimeout,
    ConnectionFailed,
    DeviceNotFound,
    NotConnected,
    OperationInProgress,
    OutOfSlots,
)
from mcp_ble.core.models import (
    Advertisement,
    BackendInfo,
    ScanFilter,
)

from . import theory
from .clock import IdleMode, ScaledClock, SimClock, Timer, VirtualClock
from .devices import SimDevice, SimStats
from .link import Link
from .world import World


class SimLinkLayer(Backend):
    """The link layer of :class:`~.backend.SimulatedBackend`: clock, scans and links."""

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
            yield device.advertisement(rssi, t)
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

    def _strikes(self, device: SimDevice, rate: float, kind: str) -> bool:
        """Whether a fault of ``kind`` (probability ``rate``) strikes now, counted when it does.
        The device's generator is drawn only for a rate above zero: runs stay reproducible."""
        if rate and device.rng.random() < rate:
            self.stats.fault(kind)
            return True
        return False

    def _connect_faults(self, device: SimDevice) -> None:
        errors = device.spec.faults.connect_errors
        address = device.spec.address
        if self._strikes(device, errors.in_progress, "in_progress"):
            raise OperationInProgress(
                f"Connecting to {address} was refused: another operation is in progress "
                "(org.bluez.Error.InProgress)",
                "retry in a moment",
            )
        if self._strikes(device, errors.out_of_slots, "out_of_slots"):
            raise OutOfSlots(
                f"Connecting to {address} failed: the controller reports no free connection slot",
                "disconnect a device you no longer need, or retry in a few seconds",
            )
        if self._strikes(device, errors.not_found, "not_found"):
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
