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
from .clock import IdleMode, SimClock, Timer
from .devices import SimDevice, SimStats
from .link import Link
from .radios import Heard, SharedWorld
from .world import Radio, World


class SimLinkLayer(Backend):
    """The link layer of :class:`~.backend.SimulatedBackend`: clock, scans and links."""

    def __init__(
        self,
        world: World,
        time_scale: float = 1.0,
        max_mtu: int = 517,
        seed: int | None = None,
        idle: IdleMode = "frozen",
        radio: str | None = None,
        shared: SharedWorld | None = None,
    ) -> None:
        """``radio`` names one of the world's ``[[radios]]``: this backend is that radio, in
        ``shared`` (the world its other radios share; a world of its own if None). Without it
        the backend is the world's single adapter and hears every device."""
        self.world = world
        self.time_scale = time_scale
        self.seed = world.seed if seed is None else seed
        self.max_mtu = min(max_mtu, world.link.max_mtu)
        if shared is None:
            shared = SharedWorld.build(world, time_scale, self.max_mtu, self.seed, idle)
        self.shared = shared
        self.clock: SimClock = shared.clock
        self.stats = SimStats()
        self.devices: dict[str, SimDevice] = shared.devices
        link = world.link
        self.radio: Radio | None = None if radio is None else world.radio(radio)
        place = self.radio
        self.sensitivity = link.sensitivity_dbm
        self.slots_total = link.adapter_slots
        self._lost_at, self._back_at = link.radio_lost_at_s, link.radio_back_at_s
        if place is not None:
            if place.sensitivity_dbm is not None:
                self.sensitivity = place.sensitivity_dbm
            if place.slots is not None:
                self.slots_total = place.slots
            self._lost_at, self._back_at = place.lost_at_s, place.back_at_s
            self._hearing = shared.hearing(place, self.sensitivity)
        else:
            self._hearing = {
                a: Heard(d, 0.0, d.rng, d.out_of_range_from) for a, d in self.devices.items()
            }
        self._advertisers = list(self._hearing.values())
        self._connecting: set[str] = set()
        self._replay: Iterator[Advertisement] | None = None
        self._unplug_timer: Timer | None = None
        #: Switched off (unplugged) and not yet taken again.
        self.off = False
        self._switched_off = False
        self._timed_out = False
        self._scan = (link.scan_interval_ms / 1000, link.scan_window_ms / 1000)
        self._initiator = (link.connect_scan_interval_ms / 1000, link.connect_scan_window_ms / 1000)

    @property
    def name(self) -> str | None:
        """The radio's name in the world, None for a world's single adapter."""
        return None if self.radio is None else self.radio.name

    def hears(self, address: str) -> Heard | None:
        """How this radio hears the device (None: out of its range)."""
        return self._hearing.get(address)

    def connection_slots(self) -> tuple[int, int]:
        """(links and connects under way, slots) of this radio."""
        return len(self.links()) + len(self._connecting), self.slots_total

    def links(self) -> list[str]:
        """Addresses linked through this radio."""
        return [a for a, d in self.devices.items() if d.owner is self]

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
                **({"radio": self.radio.name} if self.radio is not None else {}),
            },
        )

    async def start(self) -> None:
        self.shared.start()
        if self._lost_at is not None:
            self._unplug_timer = self.clock.call_at(self._lost_at, self._lost_on_time)

    def _lost_on_time(self) -> None:
        self._timed_out = True
        self._unplug()

    def _unplug(self, why: str | None = None) -> None:
        """The adapter goes (``radio_lost_at_s``, a radio's ``lost_at_s``, or
        :meth:`switch_off`), with every link on it."""
        self.off = True
        for address in self.links():
            self._reset_link(self.devices[address])
        which = "adapter" if self.radio is None else f"radio '{self.radio.name}'"
        at = self.clock.now()
        self.radio_lost(why or f"the simulated {which} was unplugged at t = {at:.1f} s")

    def switch_off(self, reason: str = "") -> None:
        """Unplug the radio now; it stays away until :meth:`switch_on`."""
        self._switched_off = True
        if not self.off:
            which = "radio" if self.radio is None else f"radio '{self.radio.name}'"
            self._unplug(reason or f"the simulated {which} was switched off")

    def switch_on(self) -> None:
        """Plug a switched-off radio back in: the next :meth:`reacquire` takes it."""
        self._switched_off = False

    async def reacquire(self) -> None:
        back_at = self._back_at
        if self._switched_off or (
            self._timed_out and (back_at is None or self.clock.now() < back_at)
        ):
            key = "radio_back_at_s of the world's [link]" if self.radio is None else "back_at_s"
            raise BackendUnavailable(
                "The simulated adapter is still unplugged",
                f"it comes back at {key}, if set"
                + (", or when the bench switches it on" if self._switched_off else ""),
            )
        self.off = self._timed_out = False

    async def stop(self) -> None:
        if self._unplug_timer is not None:
            self._unplug_timer.cancel()
        for address in self.links():
            self._reset_link(self.devices[address])
        self.shared.stop()

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
        self, heard: Heard, t: float, origin: float, scan: tuple[float, float]
    ) -> int | None:
        """The RSSI the scanner reports for the device's advertising event at ``t``, or None
        when it is not heard (window closed, packet lost, too weak)."""
        interval, window = scan
        if window < interval and (t - origin) % interval >= window:
            return None
        loss = heard.device.params.loss_rate
        if loss and heard.rng.random() < loss:
            return None
        rssi = heard.sample(t)
        return rssi if rssi >= self.sensitivity else None

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
        if self.off:
            raise self._unplugged()
        clock = self.clock
        start = clock.now()
        end = start + duration_s
        devices = self._advertisers
        heap = [(start + h.rng.uniform(0, h.device.adv_interval), i) for i, h in enumerate(devices)]
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
            heard = devices[i]
            device = heard.device
            heapq.heapreplace(heap, (t + device.adv_interval + heard.rng.uniform(0, delay), i))
            if device.link is not None or t >= heard.out_of_range_from:
                continue  # a connected peripheral stops advertising
            rssi = self._heard(heard, t, start, scan)
            if rssi is None:
                continue
            await sleep_until(t + airtime)
            if self.off:
                return  # unplugged mid-scan: nothing more is heard
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

    def _unplugged(self) -> BackendUnavailable:
        return BackendUnavailable(
            "The simulated adapter is unplugged"
            + ("" if self.radio is None else f" (radio '{self.radio.name}')"),
            "wait until it is back, or use another radio",
        )

    def _linked(self, address: str) -> tuple[SimDevice, Link]:
        device = self._device(address)
        if device.link is None or device.owner is not self:
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
        if self.off:
            raise self._unplugged()
        if device.owner is self:
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
        used = len(self.links()) + len(self._connecting)
        if used >= self.slots_total:
            raise OutOfSlots(
                f"Connecting to {address} failed: the adapter has no free connection slot "
                f"({used} of {self.slots_total} in use)",
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
        """When the initiator first hears a connectable advertisement, or None before deadline
        (never while another radio holds the link: a connected peripheral stops advertising)."""
        heard = self._hearing.get(device.spec.address)
        if heard is None or device.link is not None:
            return None
        rng = heard.rng
        t = start + rng.uniform(0, device.adv_interval)
        while t <= deadline:
            if t >= heard.out_of_range_from:
                return None
            if self._heard(heard, t, start, self._initiator) is not None:
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
        reach = self._hearing[address].out_of_range_from  # it was heard: it is in range
        if aborted or t0 >= reach:
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
        if self.off:  # unplugged while connecting: the link went with the adapter
            raise self._unplugged()
        if device.link is not None:  # another radio's CONNECT_IND came first
            await clock.sleep_until(deadline)
            raise self._connect_timeout(
                address, timeout_s, "the device stopped advertising (linked through another radio)"
            )
        device.link = link
        device.owner = self
        self.stats.connects += 1
        if math.isfinite(reach):
            self._schedule_loss(
                device,
                link,
                max(reach, done) + link.supervision_s,
                "supervision timeout: the device went out of range",
            )
        at = spec.faults.disconnect_at_s
        if at is not None and at >= done:
            self._schedule_loss(device, link, at, "remote user terminated connection")

    async def disconnect(self, address: str) -> None:
        device = self.devices.get(address)
        if device is None or device.link is None or device.owner is not self:
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
        device.owner = None
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
        owner = device.owner
        if device.link is not None and isinstance(owner, SimLinkLayer):
            device.link.lost_reason = reason
            owner._lose(device, device.link)

    def mtu(self, address: str) -> int:
        return self._linked(address)[1].mtu
