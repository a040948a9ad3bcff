"""BleApp's subscriptions: buffers of notifications per MCP session, shared radio
subscriptions, unsubscribing, draining, and ending them when a link or session goes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .app_operations import _holds_link
from .errors import BleError, InvalidInput, NotPermitted, NotSubscribed
from .gatt import label
from .models import GattCharacteristic
from .plans import Operation, SubscribePlan
from .sessions import current_owner
from .values import parse_address, shown_number

if TYPE_CHECKING:
    from .app import BleApp
    from .app_links import Connection


class Subscription:
    """A bounded buffer of notifications for one characteristic. Oldest entries drop first."""

    __slots__ = (
        "active",
        "address",
        "characteristic",
        "clock",
        "dropped",
        "ended",
        "ended_at",
        "event",
        "handle",
        "items",
        "last_drained",
        "notes",
        "owner",
        "peers",
        "received",
        "uuid",
    )

    def __init__(
        self,
        address: str,
        char: GattCharacteristic,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
        owner: str | None = None,
        peers: list[Subscription] | None = None,
    ) -> None:
        #: The app's clock (the backend's): ages of buffers count in the radio's time.
        self.clock = clock
        self.address = address
        #: The MCP session that made it (core/sessions.py); None outside any session.
        self.owner = owner
        #: Every session's subscription fed by the same radio subscription, this one included.
        self.peers: list[Subscription] = peers if peers is not None else []
        self.peers.append(self)
        #: The characteristic as discovered when subscribing: results need no lookup later.
        self.characteristic = char
        self.handle = char.handle
        self.uuid = char.uuid
        self.items: deque[tuple[float, bytes]] = deque(maxlen=capacity)
        self.received = 0
        self.dropped = 0
        self.active = True
        self.ended: str | None = None
        self.ended_at: float | None = None
        self.notes: list[str] = []
        self.event = asyncio.Event()
        #: When it was last drained (or subscribed), on ``clock``: abandoned buffers show.
        self.last_drained = clock()

    def push(self, data: bytes) -> bool:
        """Buffer ``data``; returns whether the oldest buffered notification was dropped."""
        items = self.items
        full = len(items) == items.maxlen
        if full:
            self.dropped += 1
        items.append((time.time(), data))
        self.received += 1
        self.event.set()
        return full

    def end(self, why: str) -> None:
        self.active = False
        self.ended = why
        self.ended_at = self.clock()
        self.event.set()

    def drain(self, max_items: int) -> list[tuple[float, bytes]]:
        self.last_drained = self.clock()
        out: list[tuple[float, bytes]] = []
        items = self.items
        while items and len(out) < max_items:
            out.append(items.popleft())
        if not items:
            self.event.clear()
        return out


class Subscriptions:
    """Subscribe, unsubscribe and drain notifications (a mixin of :class:`~.app.BleApp`)."""

    def _end_subscriptions(self: BleApp, address: str, why: str) -> None:
        for sub in self.subscriptions_of(address):
            if sub.active:
                sub.end(why)

    def subscriptions_of(self: BleApp, address: str | None) -> list[Subscription]:
        """The subscriptions (active, or ended with a buffer left) of one device, or all, of
        every MCP session."""
        return self.sessions.on_link(address)

    def discard_subscription(self: BleApp, sub: Subscription) -> None:
        """Forget an ended subscription and whatever it still buffered."""
        self.sessions.forget(sub, self.subscriptions)

    async def release_session(self: BleApp, owner: str | None) -> None:
        """A session ended: end its subscriptions (the radio subscription too when no other
        session shares it), drop its buffers, stop counting it on links (the pool closes links
        left idle)."""
        for sub in self.sessions.of(owner):
            if sub.active:
                with contextlib.suppress(BleError):
                    await self._drop_subscription(sub, "the MCP session ended")
            self.sessions.forget(sub, self.subscriptions)
        for address in list(self.sessions.link_users):
            self.sessions.leave_link(address, owner)

    @_holds_link
    async def subscribe(self: BleApp, address: str, ref: str | int) -> tuple[Subscription, bool]:
        """Start buffering notifications; returns (subscription, newly_subscribed)."""
        char = await self.characteristic(address, ref)
        conn = self.connection(address)
        if "notify" not in char.properties and "indicate" not in char.properties:
            raise NotPermitted(
                f"Characteristic {label(char.uuid, char.name)} (handle {char.handle}) neither "
                "notifies nor indicates; its properties are: "
                f"{', '.join(char.properties) or 'none'}",
                "use ble_read to get its value",
            )
        key = (conn.address, char.handle)
        # One subscribe, unsubscribe or descriptor write per characteristic at a time: two
        # concurrent subscribes write the CCCD once, and the second is told it was already done.
        async with self._target_locks.hold(key):
            mine = self.sessions.mine(*key)
            if mine is not None and mine.active:
                return mine, False
            conn = self.connection(address)  # the link may have gone while we waited
            existing = self.subscriptions.get(key)
            if existing is not None and existing.active:
                # Another session receives this characteristic: share its radio subscription
                # (no second CCCD write), with a buffer of this session's own.
                sub = Subscription(
                    conn.address,
                    char,
                    existing.items.maxlen or self.settings.server.notification_buffer,
                    self.now,
                    current_owner(),
                    existing.peers,
                )
                sub.notes = list(existing.notes)
                self.sessions.add(sub)
                return sub, True
            plan = SubscribePlan(
                conn.address, char.handle, char.uuid, self.settings.server.notification_buffer
            )
            # Reserved before the plan hook runs: limits (listeners) count the subscribes
            # already under way, so they hold however many arrive at once.
            self.subscribing[key] = plan
            try:
                sub = await self._start_subscription(conn, char, plan)
            finally:
                del self.subscribing[key]
            self.subscriptions[key] = sub
            self.sessions.add(sub)
        if self.connections.get(conn.address) is not conn:
            # The CCCD write completed, then the link dropped before we registered: it is a
            # done subscription that has already ended; ble_notifications reports why.
            sub.end("link lost just after subscribing")
        return sub, True

    async def _start_subscription(
        self: BleApp, conn: Connection, char: GattCharacteristic, plan: SubscribePlan
    ) -> Subscription:
        await self._event("mcp_ble_subscribe_plan", plan=plan, app=self)
        sub = Subscription(conn.address, char, plan.buffer_size, self.now, current_owner())
        sub.notes = plan.notes
        peers = sub.peers  # every session's buffer on this radio subscription

        def feed(data: bytes) -> None:
            self.notifications_received += 1
            for peer in peers:
                if peer.push(data):
                    self.notifications_dropped += 1

        if self.hook.mcp_ble_notification.get_hookimpls():
            hook = self.hook.mcp_ble_notification

            def on_data(data: bytes) -> None:
                feed(data)
                hook(address=sub.address, handle=sub.handle, data=data)
        else:
            on_data = feed

        op = Operation("subscribe", conn.address, self._deadline(), char.handle)
        await self._run(op, lambda: self.radio.start_notify(conn.address, char.handle, on_data))
        return sub

    @_holds_link
    async def unsubscribe(self: BleApp, address: str, ref: str | int) -> Subscription:
        char = await self.characteristic(address, ref)
        key = (parse_address(address), char.handle)
        async with self._target_locks.hold(key):
            conn = self.connection(address)
            sub = self.sessions.mine(*key)
            if sub is None or not sub.active:
                raise NotSubscribed(
                    f"{conn.address} characteristic {label(char.uuid, char.name)} has no active "
                    "subscription in this session",
                    "ble_subscribe first; ble_connections lists this session's subscriptions",
                )
            await self._stop_subscription(sub, "unsubscribed")
        return sub

    async def _stop_subscription(self: BleApp, sub: Subscription, why: str) -> None:
        """End ``sub`` and forget it; the radio stops only when no other session's
        subscription shares it. The caller holds the characteristic's lock."""
        if not any(p.active for p in sub.peers if p is not sub):
            op = Operation("unsubscribe", sub.address, self._deadline(), sub.handle)
            await self._run(op, lambda: self.radio.stop_notify(sub.address, sub.handle))
        sub.end(why)
        self.sessions.forget(sub, self.subscriptions)

    async def _drop_subscription(self: BleApp, sub: Subscription, why: str) -> None:
        async with self._target_locks.hold((sub.address, sub.handle)):
            if sub.active:
                await self._stop_subscription(sub, why)

    async def end_subscriptions(self: BleApp, address: str, handle: int) -> None:
        """End every session's subscription to one characteristic (plugins: abandoned ones)."""
        for sub in [s for s in self.sessions.on_link(address) if s.handle == handle]:
            if sub.active:
                await self._drop_subscription(sub, "unsubscribed")

    async def notifications(
        self: BleApp, address: str, ref: str | int, max_items: int, wait_s: float
    ) -> tuple[Subscription, list[tuple[float, bytes]]]:
        """Drain up to ``max_items``; if none are buffered, wait up to ``wait_s`` for one."""
        if not 1 <= max_items <= 10_000:
            raise InvalidInput(
                f"max_items={shown_number(max_items)} is out of range", "use 1..10000"
            )
        if not 0 <= wait_s <= 60:
            raise InvalidInput(
                f"wait_s={shown_number(wait_s)} is out of range", "use 0..60 seconds"
            )
        address = parse_address(address)
        sub = self._find_subscription(address, ref)
        if sub is None:
            char = await self.characteristic(address, ref)
            sub = self.sessions.mine(address, char.handle)
        if sub is None:
            raise NotSubscribed(
                f"{address} has no subscription for characteristic {ref}",
                "call ble_subscribe first",
            )
        if not sub.items and sub.active and wait_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await sub.event.wait()
        items = sub.drain(max_items)
        if not sub.active and not sub.items:
            # forget() leaves a newer subscription made while we waited alone
            self.sessions.forget(sub, self.subscriptions)
        return sub, items

    def _find_subscription(self: BleApp, address: str, ref: str | int) -> Subscription | None:
        """Find a subscription without touching the GATT tree: it may outlive its link."""
        from .values import parse_handle, parse_uuid

        handle = parse_handle(ref)
        if handle is not None:
            return self.sessions.mine(address, handle)
        uuid = parse_uuid(str(ref))
        owner = current_owner()
        found = [s for s in self.sessions.of(owner) if s.address == address and s.uuid == uuid]
        return found[0] if len(found) == 1 else None
