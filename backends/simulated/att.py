"""ATT on the simulated link: transactions one at a time with their faults and timeout, and
notifications streamed at their rate, delivered in bounded turns, shed when the host lags."""

from __future__ import annotations

import math
from collections.abc import Callable

from mcp_ble.core.backend import NotifyCallback
from mcp_ble.core.errors import (
    BleTimeout,
    ConnectionFailed,
    GattError,
    OperationInProgress,
)

from . import theory
from .devices import SimCharacteristic, SimDevice, Stream
from .link import Link
from .linklayer import SimLinkLayer

#: A stream's tick that runs later than this many connection events (and ``SHED_LAG_MIN_S``)
#: behind simulated time sheds the older part of what fell due: the host cannot keep up.
SHED_LAG_EVENTS = 4
SHED_LAG_MIN_S = 0.02
#: Notifications handed to subscribers per turn of the event loop, per link.
DELIVERIES_PER_TURN = 256


class SimAtt(SimLinkLayer):
    """ATT transactions and notification streams of :class:`~.backend.SimulatedBackend`."""

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
        address = device.spec.address
        if self._strikes(device, errors.in_progress, "in_progress"):
            raise OperationInProgress(
                f"The {what} on {address} was refused: another operation is in progress "
                "(org.bluez.Error.InProgress)",
                "retry in a few milliseconds",
            )
        if self._strikes(device, errors.aborted, "aborted"):
            await self._until(device, link, link.next_event_after(self.clock.now()), what)
            raise ConnectionFailed(
                f"The {what} on {address} failed: the exchange was aborted by interference",
                "retry; move closer to the device if it keeps failing",
            )
        if self._strikes(device, errors.timeout, "timeout"):
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
