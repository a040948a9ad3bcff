"""BleApp's links: connect (finding an address not heard yet), disconnect, a session leaving
a link, links the radio drops or loses, GATT discovery and pairing on a link."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .app_operations import _holds_link
from .errors import BleError, BleTimeout, DeviceNotFound, InvalidInput, NotConnected, NotPermitted
from .gatt import GattIndex
from .models import GattCharacteristic, ScanFilter
from .plans import ConnectPlan, Operation
from .policy import WriteAttempt
from .sessions import current_owner
from .tracker import DeviceRecord
from .values import parse_address, shown_number

if TYPE_CHECKING:
    from .app import BleApp

log = logging.getLogger("mcp_ble")

#: How many dropped links' reasons are kept (the newest; one per address).
LINK_ENDS_KEPT = 64


#: How long closing a dead link may take before it is left to the radio.
CLOSE_LINK_S = 5.0


@dataclass
class Connection:
    address: str
    mtu: int
    connected_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    gatt: GattIndex | None = None
    attempts: int = 1
    notes: list[str] = field(default_factory=list)
    #: How the MTU was chosen when a plugin chooses MTUs: "asked" or "os" (core/mtu.py).
    mtu_by: str | None = None
    #: The radio holding the link, when several serve (core/fleet.py).
    radio: str | None = None


class Links:
    """Connect, disconnect and the health of links (a mixin of :class:`~.app.BleApp`)."""

    def _close_dead_link(self: BleApp, op: Operation, error: BleTimeout) -> BleTimeout:
        """An ATT request went unanswered (the backend's ATT transaction timeout, or our deadline
        while it was outstanding): the bearer may carry no further request until it answers
        (Core spec Vol 3, Part F, 3.3.3), so the link is closed, its subscriptions end and its
        slot is freed. Returns the error to report, which says so."""
        address = op.address
        why = f"link closed: the {op.kind.replace('_', ' ')} got no ATT response"
        if self.connections.pop(address, None) is None:
            return error
        log.warning("%s: %s", address, why)
        self._end_subscriptions(address, why)
        self._closing[address] = self.spawn(self._close_link(address, why))
        closed = BleTimeout(
            f"{error.what}; the link was closed because the device stopped answering",
            "call ble_connect to make a new link, then try again",
        )
        return closed

    async def _close_link(self: BleApp, address: str, why: str) -> None:
        try:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_LINK_S):
                    await self.radio.disconnect(address)
            await self._event(
                "mcp_ble_disconnected", address=address, reason=why, requested=False, app=self
            )
        finally:
            self._closing.pop(address, None)

    def _on_radio_state(self: BleApp, state: str, reason: str) -> None:
        """The backend's radio changed state. A lost radio took every link with it."""
        if state != "lost":
            return
        why = f"radio lost: {reason}"
        for address in list(self.connections):
            del self.connections[address]
            self._end_subscriptions(address, why)
            self.spawn(
                self._event(
                    "mcp_ble_disconnected", address=address, reason=why, requested=False, app=self
                )
            )

    async def connect(
        self: BleApp, address: str, timeout_s: float | None = None
    ) -> tuple[Connection, bool]:
        """Connect (or return the existing link). Returns (connection, newly_connected)."""
        address = parse_address(address)
        timeout = timeout_s if timeout_s is not None else self.settings.server.connect_timeout_s
        if not 0 < timeout <= 120:
            raise InvalidInput(
                f"timeout_s={shown_number(timeout)} is out of range",
                "use between 0.1 and 120 seconds",
            )
        self._check_radio()
        async with self._connect_locks.hold(address):
            existing = self.connections.get(address)
            if existing is not None:
                if self.radio.is_connected(address):
                    self.sessions.use_link(address)
                    return existing, False
                # The radio no longer has the link (its loss went unreported): forget it and
                # connect anew rather than report a dead link as connected.
                self._on_backend_disconnect(address, "the radio no longer has the link")
            return await self._connect_new(address, timeout), True

    async def _connect_new(self: BleApp, address: str, within_s: float) -> Connection:
        """A new link to ``address``, found by a scan first if it was never heard; the caller
        holds its connect lock."""
        started = time.monotonic()
        record, found_by = await self._heard(address, within_s)
        if not record.connectable:
            raise NotPermitted(
                f"{address} advertises as not connectable (a beacon)",
                "read its advertisement data from ble_scan instead",
            )
        # The scan for an address not heard before counts against the same timeout.
        plan = ConnectPlan(address, max(within_s - (time.monotonic() - started), 0.001))
        if found_by is not None:
            plan.note(f"found by a {found_by:.2f} s scan for this address")
        if self.fleet is not None and self.fleet.several:
            plan.radio = self.fleet.preview(address)
        await self._event("mcp_ble_connect_plan", plan=plan, app=self)
        for other in plan.release:
            # Checked at the moment of release: an operation may have started on the link
            # since the plan was made, and dropping it would fail that operation.
            if other in self.connections and other not in self.in_flight:
                log.info("releasing %s to make room for %s", other, address)
                await self.disconnect(other)
        op = Operation("connect", address, time.monotonic() + plan.timeout_s)
        op.began = self.now()
        closing = self._closing.get(address)
        if closing is not None:  # the old link is still being closed: let it finish
            await asyncio.wait({closing}, timeout=max(op.remaining() - 0.1, 0))
        try:
            # A backend that pairs while connecting (bleak's pair_on_connect) changes bonds:
            # that is pairing, so it passes the write policy first.
            pairing = (
                self.guard.authorized(WriteAttempt("pair", address))
                if getattr(self.radio, "pair_on_connect", False)
                else contextlib.nullcontext()
            )
            async with pairing:
                _, attempts = await self._run(
                    op, lambda: self.radio.connect(address, max(op.remaining(), 0.001))
                )
        except BleError as exc:
            if self.mtu_choices is not None:  # a choice for a link that did not stay up
                self.mtu_choices.asked.pop(address, None)
            await self._event(
                "mcp_ble_connect_failed",
                address=address,
                error=exc,
                duration_s=self._took(op),
                attempts=getattr(exc, "attempts", 1),
                app=self,
            )
            raise
        # The radio holding the link: a probe reconnects on it, not wherever a fleet would route.
        link = self.fleet.link_backend(address) if self.fleet is not None else self.radio
        if self.mtu_choices is not None:  # a plugin asked to measure candidate MTUs
            await self.mtu_choices.probe(link, address, max(op.remaining(), 0.001))
        mtu_by, mtu_notes = (
            self.mtu_choices.outcome(address, link) if self.mtu_choices is not None else (None, [])
        )
        conn = Connection(
            address,
            self.radio.mtu(address),
            last_used=self.now(),
            attempts=attempts,
            notes=plan.notes + mtu_notes,
            mtu_by=mtu_by,
            radio=self.fleet.radio_of(address) if self.fleet is not None else None,
        )
        self.connections[address] = conn
        self.link_ends.pop(address, None)
        self.sessions.use_link(address)
        await self._event(
            "mcp_ble_connected",
            address=address,
            duration_s=self._took(op),
            attempts=attempts,
            app=self,
        )
        return conn

    async def _heard(
        self: BleApp, address: str, within_s: float
    ) -> tuple[DeviceRecord, float | None]:
        """The record of ``address``, listening for it first when it was never heard, or
        heard only by radios that are gone; and that scan's length (None: no scan)."""
        record = self.tracker.get(address)
        fleet = self.fleet
        if fleet is not None:
            fleet.begin_connect(address)
        if record is None or (fleet is not None and not fleet.hears(address)):
            return await self._find(address, within_s)
        return record, None

    async def _find(
        self: BleApp, address: str, connect_timeout: float
    ) -> tuple[DeviceRecord, float]:
        """Listen for one address this server has not heard yet: a scan for that address alone,
        ending the moment it is heard, for at most half the connect timeout (and no longer than
        a default scan), so the connection keeps the rest. Returns the record and the scan's
        length on the backend's clock."""
        duration = min(connect_timeout / 2, self.settings.server.scan_duration_s)
        outcome = await self.scan(duration, ScanFilter(address=address), limit=1)
        if not outcome.devices:
            raise DeviceNotFound(
                f"No device with address {address} was heard in a {duration:g} s scan",
                "check the address, and that the device is powered, advertising and in range; "
                "ble_scan lists the devices around",
            )
        return outcome.devices[0], outcome.duration_s

    async def disconnect(self: BleApp, address: str) -> bool:
        """Drop the link; returns False if there was none."""
        address = parse_address(address)
        conn = self.connections.pop(address, None)
        if conn is None:
            return False
        self.sessions.link_dropped(address)
        self._end_subscriptions(address, "disconnected by request")
        try:
            await self.radio.disconnect(address)
        finally:
            await self._event(
                "mcp_ble_disconnected",
                address=address,
                reason="requested",
                requested=True,
                app=self,
            )
        return True

    def _on_backend_disconnect(self: BleApp, address: str, reason: str) -> None:
        """Backends call this on the loop when a link drops without our asking."""
        if self.connections.pop(address, None) is None:
            return
        ends = self.link_ends
        ends.pop(address, None)
        ends[address] = (reason, self.now())
        if len(ends) > LINK_ENDS_KEPT:
            del ends[next(iter(ends))]  # the oldest
        self.sessions.link_dropped(address)
        self._end_subscriptions(address, f"link lost: {reason}")
        self.spawn(
            self._event(
                "mcp_ble_disconnected", address=address, reason=reason, requested=False, app=self
            )
        )

    async def leave(self: BleApp, address: str) -> tuple[bool, int]:
        """``ble_disconnect`` for the current MCP session: its subscriptions on the link end;
        the link goes down unless other sessions use it. Returns (was connected, sessions
        still using it)."""
        address = parse_address(address)
        if address not in self.connections:
            return False, 0
        owner = current_owner()
        for sub in self.sessions.of(owner):
            if sub.address == address and sub.active:
                await self._drop_subscription(sub, "disconnected by request")
        others = self.sessions.leave_link(address, owner)
        if others:
            return True, others
        return await self.disconnect(address), 0

    def connection(self: BleApp, address: str) -> Connection:
        address = parse_address(address)
        conn = self.connections.get(address)
        if conn is None:
            self._check_radio()
            ended = self.link_ends.get(address)
            if ended is not None:
                reason, at = ended
                raise NotConnected(
                    f"{address} is not connected: its link was lost {self.now() - at:.0f} s ago "
                    f"({reason})",
                    "call ble_connect to connect again",
                )
            known = self.tracker.get(address) is not None
            raise NotConnected(
                f"{address} is not connected",
                "call ble_connect first" if known else "run ble_scan, then ble_connect",
            )
        conn.last_used = self.now()
        return conn

    @_holds_link
    async def gatt(self: BleApp, address: str, refresh: bool = False) -> GattIndex:
        conn = self.connection(address)
        if conn.gatt is None or refresh:
            op = Operation("discover", conn.address, self._deadline())
            services, _ = await self._run(op, lambda: self.radio.discover(conn.address))
            conn.gatt = GattIndex(services, self.codec.name)
        return conn.gatt

    async def characteristic(self: BleApp, address: str, ref: str | int) -> GattCharacteristic:
        index = await self.gatt(address)
        return index.characteristic(ref, self.connection(address).address)

    @_holds_link
    async def pair(self: BleApp, address: str) -> Connection:
        """Pair (bond) with a connected device, where the backend and platform can."""
        conn = self.connection(address)
        async with self.guard.authorized(WriteAttempt("pair", conn.address)):
            op = Operation("pair", conn.address, self._deadline())
            await self._run(op, lambda: self.radio.pair(conn.address))
        conn.gatt = None  # an encrypted link may expose more of the database: discover again
        return conn
