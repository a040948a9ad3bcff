"""The application: one backend, the enabled plugins, and all device state.

``BleApp`` owns the async flow. Every public operation validates its input, asks the plugins for
decisions through hooks, performs the I/O on the backend, and reports events. MCP tools and the CLI
are thin layers over these methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from prometheus_client import CollectorRegistry

from .backend import Backend
from .deadlines import Abandoned, RadioLostDuringCall, bounded
from .errors import (
    BleError,
    BleTimeout,
    ConfigError,
    DeviceNotFound,
    InvalidInput,
    NotConnected,
    NotPermitted,
    NotSubscribed,
    ValueTooLong,
)
from .gatt import GattIndex, label
from .locks import KeyedLocks
from .models import GattCharacteristic, GattDescriptor, ScanFilter
from .mtu import MtuChoices
from .plans import (
    ATT_REQUESTS,
    ConnectPlan,
    Operation,
    OperationKind,
    ScanPlan,
    SubscribePlan,
    WritePlan,
)
from .plugin_api import PluginApp
from .plugin_manager import (
    PluginCatalog,
    RegisteredBackends,
    build_plugin_manager,
    call_in_order,
    check_hook_rules,
    hooks_of,
    inject_settings,
    instantiate,
)
from .policy import CCCD, WriteAttempt, WriteGuard
from .scanning import ScanBroker
from .sessions import Sessions, current_owner
from .settings import CoreSettings, LoadedSettings
from .tracker import AdvertisementTracker, DeviceRecord
from .values import MAX_ATTRIBUTE_LEN, parse_address, shown_number

log = logging.getLogger("mcp_ble")
#: How long closing a dead link may take before it is left to the radio.
CLOSE_LINK_S = 5.0
T = TypeVar("T")
R = TypeVar("R")


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


@dataclass
class ScanOutcome:
    devices: list[DeviceRecord]
    matched: int
    heard: int
    duration_s: float
    plan: ScanPlan


@dataclass
class ReadOutcome:
    """What a read did; ``address`` is the canonical address it ran on."""

    address: str
    characteristic: GattCharacteristic
    data: bytes


@dataclass
class WriteOutcome:
    address: str
    characteristic: GattCharacteristic
    nbytes: int
    response: bool
    chunks: int
    notes: list[str]


@dataclass
class DescriptorOutcome:
    """What a descriptor read or write did; ``data`` is the value read or written."""

    address: str
    descriptor: GattDescriptor
    characteristic: GattCharacteristic
    data: bytes


def write_attempt(char: GattCharacteristic, plan: WritePlan) -> WriteAttempt:
    return WriteAttempt(
        "characteristic",
        plan.address,
        b"".join(plan.chunks),
        char.uuid,
        char.handle,
        chunks=len(plan.chunks),
    )


def _holds_link(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """The whole operation (discovery, checks, I/O) holds the link, not just its radio calls."""

    @functools.wraps(method)
    async def wrapper(self: BleApp, address: str, *args: Any, **kwargs: Any) -> R:
        try:
            canonical = parse_address(address)
        except BleError:
            return await method(self, address, *args, **kwargs)  # the method reports it
        with self._holding(canonical):
            return await method(self, address, *args, **kwargs)

    return wrapper


class BleApp:
    """One server instance. Build with :meth:`create`, then ``await app.start()``."""

    def __init__(
        self,
        settings: CoreSettings,
        catalog: PluginCatalog,
        loaded: LoadedSettings | None = None,
    ) -> None:
        self.settings = settings
        self.loaded = loaded
        self.catalog = catalog
        self.plugins = [
            (name, instantiate(obj))
            for name, obj in catalog.resolve(settings.backend, settings.plugins)
        ]
        for name, plugin in self.plugins:
            inject_settings(plugin, name, settings)
        self.pm = build_plugin_manager(self.plugins, trace=settings.trace_hooks)
        #: What plugins see as ``app`` (core/plugin_api.py).
        self.api = PluginApp(self)
        self.hook = self.pm.hook
        self.tracker = AdvertisementTracker(settings.server.max_tracked_devices, clock=self.now)
        #: The write policy and audit log; every write, descriptor write and pairing passes it.
        self.guard = WriteGuard(settings.server, self.tracker)
        self.connections: dict[str, Connection] = {}
        #: Operations under way per address (connects included); the pool never releases these.
        self.in_flight: dict[str, int] = {}
        #: One subscription per characteristic: the one the radio feeds (its peers, other
        #: sessions' subscriptions to the same characteristic, are fed with it).
        self.subscriptions: dict[tuple[str, int], Subscription] = {}
        #: Who holds what, per MCP session (core/sessions.py).
        self.sessions = Sessions()
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.backend: Backend | None = None
        self.scans_run = 0
        #: Notifications received from the radio, and lost to full buffers (one per buffer that
        #: lost one), since start: counters, unlike the per-subscription figures that go away.
        self.notifications_received = 0
        self.notifications_dropped = 0
        self.started_at = time.time()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.scanner = ScanBroker(self, settings.server.max_concurrent_scans)
        self._connect_locks: KeyedLocks[str] = KeyedLocks()
        #: Subscribe, unsubscribe and descriptor writes, one at a time per characteristic.
        self._target_locks: KeyedLocks[tuple[str, int]] = KeyedLocks()
        #: Subscribes under way (reserved before their plan hook runs), oldest first.
        self.subscribing: dict[tuple[str, int], SubscribePlan] = {}
        #: Backend calls cancelled at their deadline and still cleaning up.
        self.abandoned = Abandoned()
        #: Dead links being closed in the background, by address (a new connect waits for it).
        self._closing: dict[str, asyncio.Task[None]] = {}
        self.adv_hook = False
        #: Set when a plugin chooses ATT MTUs (core/mtu.py).
        self.mtu_choices: MtuChoices | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(cls, loaded: LoadedSettings, catalog: PluginCatalog) -> BleApp:
        return cls(loaded.settings, catalog, loaded)

    async def start(self) -> None:
        registration = self.catalog.backends[self.settings.backend]
        backend_settings = self.settings.backend_settings(self.settings.backend)
        self.backend = registration.factory(
            backend_settings, RegisteredBackends(self.catalog, self.settings)
        )
        self.guard.guard_backend(self.backend)
        self.backend.on_disconnect = self._on_backend_disconnect
        if self.hook.mcp_ble_mtu_plan.get_hookimpls():
            self.mtu_choices = MtuChoices(self.hook, self.api)
            self.backend.mtu_chooser = self.mtu_choices.choose
        await self.backend.start()
        self.backend.health.listeners.append(self._on_radio_state)
        self.adv_hook = bool(self.hook.mcp_ble_advertisement.get_hookimpls())
        self.hook.mcp_ble_register_metrics(registry=self.metrics_registry, app=self.api)
        await self._event("mcp_ble_startup", app=self)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._event("mcp_ble_shutdown", app=self)
        if self.backend is not None:
            for address in list(self.connections):
                with contextlib.suppress(Exception):
                    await self.disconnect(address)
            await self.backend.health.close()
            with contextlib.suppress(Exception):
                await self.backend.stop()
        self.guard.audit.close()
        await self.abandoned.close()

    async def __aenter__(self) -> BleApp:
        try:
            await self.start()
        except BaseException:
            await self.close()  # a plugin refused to start: stop what already runs
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task for the app's lifetime (cancelled by ``close``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def now(self) -> float:
        """Seconds on the backend's clock (simulated time on the simulated backend): device,
        link and subscription ages count in it, as scan durations and retry waits do."""
        return self.backend.now() if self.backend is not None else time.monotonic()

    @property
    def radio(self) -> Backend:
        if self.backend is None:
            raise RuntimeError("BleApp.start() has not been called")
        return self.backend

    def add_plugin(self, name: str, plugin: object) -> None:
        """Register one more plugin on this app (the MCP layer adds its resource publisher this
        way). Hot-path hooks take effect for scans and subscriptions started afterwards."""
        self.pm.register(plugin, name=name)
        try:
            check_hook_rules(self.pm, plugin)
        except ConfigError as exc:
            self.pm.unregister(plugin)
            raise ConfigError(f"plugin '{name}' cannot be added: {exc}") from None
        self.plugins.append((name, plugin))
        self.adv_hook = bool(self.hook.mcp_ble_advertisement.get_hookimpls())

    def plugin_hooks(self) -> list[tuple[str, list[str]]]:
        """(plugin name, hooks it implements) for every registered plugin, in order."""
        return [(name, hooks_of(self.pm, plugin)) for name, plugin in self.plugins]

    # ------------------------------------------------------------------ hook helpers

    async def _event(self, name: str, **kwargs: Any) -> None:
        """Call an event or plan hook: implementations run strictly in plugin order, each awaited
        before the next (see :func:`call_in_order`). A plugin that cannot start as configured
        raises ConfigError from its startup hook, which ends the command."""
        if "app" in kwargs:
            kwargs["app"] = self.api
        await call_in_order(self.pm, name, kwargs, trace=self.settings.trace_hooks)

    def collect_metrics(self) -> None:
        """Let plugins refresh sampled gauges; call right before exposing metrics."""
        self.hook.mcp_ble_collect_metrics(app=self.api)

    def _took(self, op: Operation) -> float:
        """How long ``op`` has run, on the backend's clock (like scan durations)."""
        return self.now() - op.began if op.began is not None else 0.0

    def _finished(self, op: Operation, nbytes: int, error: BleError | None) -> None:
        try:
            self.hook.mcp_ble_operation_finished(
                operation=op, duration_s=self._took(op), nbytes=nbytes, error=error
            )
        except Exception:
            log.exception("plugin hook mcp_ble_operation_finished failed")

    async def _run(
        self,
        op: Operation,
        call: Callable[[], Awaitable[T]],
        nbytes: int | Callable[[T], int] = 0,
    ) -> tuple[T, int]:
        """Run one backend call under the operation's deadline, retrying as plugins decide.

        ``nbytes`` is the payload size, or a function of the result (reads). Returns the result
        and the number of attempts; a final error carries ``attempts`` too."""
        if op.began is None:
            op.began = self.now()
        with self._holding(op.address):
            return await self._attempts(op, call, nbytes)

    async def _attempts(
        self,
        op: Operation,
        call: Callable[[], Awaitable[T]],
        nbytes: int | Callable[[T], int],
    ) -> tuple[T, int]:
        attempt = 0
        while True:
            attempt += 1
            op.attempts = attempt
            try:
                health = self.radio.health
                if not health.ready:
                    raise health.unavailable()
                remaining = op.remaining()
                if remaining <= 0:
                    raise TimeoutError
                result = await bounded(call, remaining, health.wait_lost(), self.abandoned, op.kind)
            except TimeoutError:
                error: BleError = self._timeout(op)
            except RadioLostDuringCall:
                error = self.radio.health.unavailable()
            except BleError as exc:
                error = exc
            except Exception as exc:  # a backend bug must still become a readable error
                log.exception("backend %s failed during %s", self.settings.backend, op.kind)
                error = BleError(
                    f"The {self.settings.backend} backend failed during {op.kind.replace('_', ' ')}"
                    f" on {op.address}: {type(exc).__name__}: {exc}",
                    "retry; if it persists run 'mcp-ble doctor' and check the server log",
                )
            else:
                self._finished(op, nbytes(result) if callable(nbytes) else nbytes, None)
                return result, attempt
            if isinstance(error, BleTimeout) and op.kind in ATT_REQUESTS:
                error = self._close_dead_link(op, error)
            delay = self.hook.mcp_ble_retry_delay(operation=op, error=error, attempt=attempt)
            if delay is None or time.monotonic() + delay >= op.deadline:
                error.attempts = attempt
                self._finished(op, 0, error)
                raise error
            log.info("retrying %s on %s in %.2fs after: %s", op.kind, op.address, delay, error)
            await self.radio.sleep(delay)

    @contextlib.contextmanager
    def _holding(self, address: str) -> Iterator[None]:
        """Mark a link as in use for the duration (the pool never releases it meanwhile)."""
        in_flight = self.in_flight
        in_flight[address] = in_flight.get(address, 0) + 1
        try:
            yield
        finally:
            if in_flight[address] <= 1:
                del in_flight[address]
            else:
                in_flight[address] -= 1

    def _timeout(self, op: Operation) -> BleTimeout:
        took = time.monotonic() - op.started
        if op.kind == "connect":
            return BleTimeout(
                f"Connecting to {op.address} timed out after {took:.1f} s",
                "the device may be out of range or no longer advertising: run ble_scan to check "
                "it is still there, or pass a larger timeout_s",
            )
        return BleTimeout(
            f"The {op.kind.replace('_', ' ')} on {op.address} timed out after {took:.1f} s",
            "the device may be busy or out of range; check ble_connections and try again",
        )

    def _close_dead_link(self, op: Operation, error: BleTimeout) -> BleTimeout:
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

    async def _close_link(self, address: str, why: str) -> None:
        try:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_LINK_S):
                    await self.radio.disconnect(address)
            await self._event(
                "mcp_ble_disconnected", address=address, reason=why, requested=False, app=self
            )
        finally:
            self._closing.pop(address, None)

    def _on_radio_state(self, state: str, reason: str) -> None:
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

    def _check_radio(self) -> None:
        health = self.radio.health
        if not health.ready:
            raise health.unavailable()

    def _deadline(self) -> float:
        return time.monotonic() + self.settings.server.operation_timeout_s

    # ------------------------------------------------------------------ discovery

    async def scan(
        self, duration_s: float | None, scan_filter: ScanFilter, limit: int | None = None
    ) -> ScanOutcome:
        """Scan for ``duration_s`` (plugins may adjust it); return matching devices by RSSI.
        With ``limit``, the scan ends as soon as ``limit`` distinct devices matching the filter
        have been heard (a caller looking for one named device waits for that device only)."""
        if duration_s is not None and not 0 < duration_s <= 300:
            raise InvalidInput(
                f"duration_s={shown_number(duration_s)} is out of range",
                "scan for more than 0 and at most 300 seconds",
            )
        self._check_radio()
        requested = duration_s
        plan = ScanPlan(
            duration_s=duration_s or self.settings.server.scan_duration_s,
            scan_filter=scan_filter,
            requested_duration_s=requested,
            stop_after=limit,
        )
        await self._event("mcp_ble_scan_plan", plan=plan, app=self)
        self.scans_run += 1
        request = await self.scanner.scan(plan)
        # Check again at the end: a later advertisement may have moved a device out of the
        # filter (its RSSI fell below min_rssi), and results report the latest advertisement.
        matched = {a: r for a, r in request.matched.items() if plan.scan_filter.matches(r)}
        took = self.radio.now() - request.started
        await self._event(
            "mcp_ble_scan_finished", plan=plan, found=len(matched), duration_s=took, app=self
        )
        devices = sorted(matched.values(), key=lambda r: r.rssi, reverse=True)
        if limit is not None:
            devices = devices[:limit]
        return ScanOutcome(devices, len(matched), request.heard, took, plan)

    def devices(self, limit: int | None = None) -> list[DeviceRecord]:
        found = self.tracker.recent(self.settings.server.recent_s)
        return found[:limit] if limit is not None else found

    # ------------------------------------------------------------------ connection

    async def connect(
        self, address: str, timeout_s: float | None = None
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
            started = time.monotonic()
            record = self.tracker.get(address)
            found_by: float | None = None
            if record is None:
                record, found_by = await self._find(address, timeout)
            if not record.connectable:
                raise NotPermitted(
                    f"{address} advertises as not connectable (a beacon)",
                    "read its advertisement data from ble_scan instead",
                )
            # The scan for an address not heard before counts against the same timeout.
            plan = ConnectPlan(address, max(timeout - (time.monotonic() - started), 0.001))
            if found_by is not None:
                plan.note(f"found by a {found_by:.2f} s scan for this address")
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
            if self.mtu_choices is not None:  # a plugin asked to measure candidate MTUs
                await self.mtu_choices.probe(self.radio, address, max(op.remaining(), 0.001))
            mtu_by, mtu_notes = (
                self.mtu_choices.outcome(address, self.radio)
                if self.mtu_choices is not None
                else (None, [])
            )
            conn = Connection(
                address,
                self.radio.mtu(address),
                last_used=self.now(),
                attempts=attempts,
                notes=plan.notes + mtu_notes,
                mtu_by=mtu_by,
            )
            self.connections[address] = conn
            self.sessions.use_link(address)
            await self._event(
                "mcp_ble_connected",
                address=address,
                duration_s=self._took(op),
                attempts=attempts,
                app=self,
            )
            return conn, True

    async def _find(self, address: str, connect_timeout: float) -> tuple[DeviceRecord, float]:
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

    async def disconnect(self, address: str) -> bool:
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

    def _on_backend_disconnect(self, address: str, reason: str) -> None:
        """Backends call this on the loop when a link drops without our asking."""
        if self.connections.pop(address, None) is None:
            return
        self.sessions.link_dropped(address)
        self._end_subscriptions(address, f"link lost: {reason}")
        self.spawn(
            self._event(
                "mcp_ble_disconnected", address=address, reason=reason, requested=False, app=self
            )
        )

    def _end_subscriptions(self, address: str, why: str) -> None:
        for sub in self.subscriptions_of(address):
            if sub.active:
                sub.end(why)

    def subscriptions_of(self, address: str | None) -> list[Subscription]:
        """The subscriptions (active, or ended with a buffer left) of one device, or all, of
        every MCP session."""
        return self.sessions.on_link(address)

    def discard_subscription(self, sub: Subscription) -> None:
        """Forget an ended subscription and whatever it still buffered."""
        self.sessions.forget(sub, self.subscriptions)

    async def leave(self, address: str) -> tuple[bool, int]:
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

    async def release_session(self, owner: str | None) -> None:
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

    def connection(self, address: str) -> Connection:
        address = parse_address(address)
        conn = self.connections.get(address)
        if conn is None:
            self._check_radio()
            known = self.tracker.get(address) is not None
            raise NotConnected(
                f"{address} is not connected",
                "call ble_connect first" if known else "run ble_scan, then ble_connect",
            )
        conn.last_used = self.now()
        return conn

    @_holds_link
    async def gatt(self, address: str, refresh: bool = False) -> GattIndex:
        conn = self.connection(address)
        if conn.gatt is None or refresh:
            op = Operation("discover", conn.address, self._deadline())
            services, _ = await self._run(op, lambda: self.radio.discover(conn.address))
            conn.gatt = GattIndex(services)
        return conn.gatt

    async def characteristic(self, address: str, ref: str | int) -> GattCharacteristic:
        index = await self.gatt(address)
        return index.characteristic(ref, self.connection(address).address)

    @_holds_link
    async def pair(self, address: str) -> Connection:
        """Pair (bond) with a connected device, where the backend and platform can."""
        conn = self.connection(address)
        async with self.guard.authorized(WriteAttempt("pair", conn.address)):
            op = Operation("pair", conn.address, self._deadline())
            await self._run(op, lambda: self.radio.pair(conn.address))
        conn.gatt = None  # an encrypted link may expose more of the database: discover again
        return conn

    # ------------------------------------------------------------------ transfer

    @_holds_link
    async def read(self, address: str, ref: str | int) -> ReadOutcome:
        char = await self.characteristic(address, ref)
        conn = self.connection(address)
        if "read" not in char.properties:
            raise NotPermitted(
                f"Characteristic {label(char.uuid)} (handle {char.handle}) cannot be read; "
                f"its properties are: {', '.join(char.properties) or 'none'}",
                "use ble_subscribe for notify/indicate characteristics",
            )
        op = Operation("read", conn.address, self._deadline(), char.handle)
        data, _ = await self._run(op, lambda: self.radio.read(conn.address, char.handle), len)
        return ReadOutcome(conn.address, char, data)

    @_holds_link
    async def write(
        self,
        address: str,
        ref: str | int,
        data: bytes,
        response: Literal["auto", "true", "false"] | bool = "auto",
    ) -> WriteOutcome:
        """Write a characteristic: plan hooks first, then the write policy on exactly what will
        be sent (core/policy.py), then the I/O."""
        conn, char, plan, with_response = await self._plan_write(address, ref, data, response)
        kind: OperationKind = "write" if with_response else "write_without_response"
        async with self.guard.authorized(write_attempt(char, plan)):
            for chunk in plan.chunks:
                op = Operation(kind, conn.address, self._deadline(), char.handle)
                await self._run(
                    op,
                    self._writer(conn.address, char.handle, chunk, with_response),
                    nbytes=len(chunk),
                )
        return WriteOutcome(
            conn.address, char, len(data), with_response, len(plan.chunks), plan.notes
        )

    @_holds_link
    async def preview_write(
        self,
        address: str,
        ref: str | int,
        data: bytes,
        response: Literal["auto", "true", "false"] | bool = "auto",
    ) -> WriteAttempt:
        """What :meth:`write` would send (plan hooks included), without sending it: the
        question a person is asked before a write."""
        _, char, plan, _ = await self._plan_write(address, ref, data, response)
        return write_attempt(char, plan)

    async def _plan_write(
        self,
        address: str,
        ref: str | int,
        data: bytes,
        response: Literal["auto", "true", "false"] | bool,
    ) -> tuple[Connection, GattCharacteristic, WritePlan, bool]:
        char = await self.characteristic(address, ref)
        conn = self.connection(address)
        props = char.properties
        with_response = self._choose_response(char, response)
        if with_response and "write" not in props:
            raise NotPermitted(
                f"Characteristic {label(char.uuid)} (handle {char.handle}) does not accept "
                f"write with response; its properties are: {', '.join(props) or 'none'}",
                "pass response=false"
                if "write-without-response" in props
                else "this characteristic is not writable",
            )
        if not with_response and "write-without-response" not in props:
            raise NotPermitted(
                f"Characteristic {label(char.uuid)} (handle {char.handle}) does not accept "
                f"write without response; its properties are: {', '.join(props) or 'none'}",
                "pass response=true" if "write" in props else "this characteristic is not writable",
            )
        plan = WritePlan(conn.address, char.handle, data, with_response, conn.mtu)
        await self._event("mcp_ble_write_plan", plan=plan, app=self)
        payload = conn.mtu - 3
        longest = max(map(len, plan.chunks))
        if not with_response and longest > payload:
            raise ValueTooLong(
                f"{longest} bytes do not fit one write without response: the "
                f"negotiated MTU is {conn.mtu}, so at most {payload} bytes per write",
                f"send at most {payload} bytes per call, use response=true for a long write "
                "(up to 512 bytes), or enable the 'chunking' plugin",
            )
        if longest > MAX_ATTRIBUTE_LEN:
            raise ValueTooLong(
                f"The value is {longest} bytes; a BLE attribute holds at most {MAX_ATTRIBUTE_LEN}",
                "enable the 'chunking' plugin to send it as a stream of writes, "
                "or split it over several calls",
            )
        return conn, char, plan, with_response

    def _writer(
        self, address: str, handle: int, chunk: bytes, response: bool
    ) -> Callable[[], Awaitable[None]]:
        return lambda: self.radio.write(address, handle, chunk, response)

    @staticmethod
    def _choose_response(
        char: GattCharacteristic, response: Literal["auto", "true", "false"] | bool
    ) -> bool:
        if isinstance(response, bool):
            return response
        if response == "true":
            return True
        if response == "false":
            return False
        if response != "auto":
            raise InvalidInput(
                f"response='{response}' is not valid", "use 'auto', 'true' or 'false'"
            )
        return "write" in char.properties or "write-without-response" not in char.properties

    async def descriptor(
        self, address: str, ref: str | int, characteristic: str | int | None = None
    ) -> tuple[GattDescriptor, GattCharacteristic]:
        index = await self.gatt(address)
        conn = self.connection(address)
        char = index.characteristic(characteristic, conn.address) if characteristic else None
        desc = index.descriptor(ref, conn.address, char)
        return desc, index.descriptors[desc.handle][1]

    @_holds_link
    async def read_descriptor(
        self, address: str, ref: str | int, characteristic: str | int | None = None
    ) -> DescriptorOutcome:
        desc, char = await self.descriptor(address, ref, characteristic)
        conn = self.connection(address)
        op = Operation("read_descriptor", conn.address, self._deadline(), desc.handle)
        data, _ = await self._run(
            op, lambda: self.radio.read_descriptor(conn.address, desc.handle), len
        )
        return DescriptorOutcome(conn.address, desc, char, data)

    @_holds_link
    async def write_descriptor(
        self, address: str, ref: str | int, data: bytes, characteristic: str | int | None = None
    ) -> DescriptorOutcome:
        attempt = await self.preview_write_descriptor(address, ref, data, characteristic)
        desc, char = await self.descriptor(address, ref, characteristic)
        # Serialized with subscribe and unsubscribe of its characteristic (a CCCD write is one).
        async with self._target_locks.hold((parse_address(address), char.handle)):
            conn = self.connection(address)
            async with self.guard.authorized(attempt):
                op = Operation("write_descriptor", conn.address, self._deadline(), desc.handle)
                await self._run(
                    op,
                    lambda: self.radio.write_descriptor(conn.address, desc.handle, data),
                    nbytes=len(data),
                )
        return DescriptorOutcome(conn.address, desc, char, data)

    @_holds_link
    async def preview_write_descriptor(
        self, address: str, ref: str | int, data: bytes, characteristic: str | int | None = None
    ) -> WriteAttempt:
        """What :meth:`write_descriptor` would send, checked but not sent. A CCCD write counts
        as a write here (kind ``cccd``); only ble_subscribe's own CCCD write is a read."""
        if len(data) > MAX_ATTRIBUTE_LEN:
            raise ValueTooLong(
                f"The value is {len(data)} bytes; a descriptor holds at most {MAX_ATTRIBUTE_LEN}",
                "descriptors are small: check the value",
            )
        desc, char = await self.descriptor(address, ref, characteristic)
        return WriteAttempt(
            "cccd" if desc.uuid == CCCD else "descriptor",
            self.connection(address).address,
            data,
            char.uuid,
            char.handle,
            desc.uuid,
            desc.handle,
        )

    # ------------------------------------------------------------------ notifications

    @_holds_link
    async def subscribe(self, address: str, ref: str | int) -> tuple[Subscription, bool]:
        """Start buffering notifications; returns (subscription, newly_subscribed)."""
        char = await self.characteristic(address, ref)
        conn = self.connection(address)
        if "notify" not in char.properties and "indicate" not in char.properties:
            raise NotPermitted(
                f"Characteristic {label(char.uuid)} (handle {char.handle}) neither notifies nor "
                f"indicates; its properties are: {', '.join(char.properties) or 'none'}",
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
        self, conn: Connection, char: GattCharacteristic, plan: SubscribePlan
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
    async def unsubscribe(self, address: str, ref: str | int) -> Subscription:
        char = await self.characteristic(address, ref)
        key = (parse_address(address), char.handle)
        async with self._target_locks.hold(key):
            conn = self.connection(address)
            sub = self.sessions.mine(*key)
            if sub is None or not sub.active:
                raise NotSubscribed(
                    f"{conn.address} characteristic {label(char.uuid)} has no active subscription "
                    "in this session",
                    "ble_subscribe first; ble_connections lists this session's subscriptions",
                )
            await self._stop_subscription(sub, "unsubscribed")
        return sub

    async def _stop_subscription(self, sub: Subscription, why: str) -> None:
        """End ``sub`` and forget it; the radio stops only when no other session's
        subscription shares it. The caller holds the characteristic's lock."""
        if not any(p.active for p in sub.peers if p is not sub):
            op = Operation("unsubscribe", sub.address, self._deadline(), sub.handle)
            await self._run(op, lambda: self.radio.stop_notify(sub.address, sub.handle))
        sub.end(why)
        self.sessions.forget(sub, self.subscriptions)

    async def _drop_subscription(self, sub: Subscription, why: str) -> None:
        async with self._target_locks.hold((sub.address, sub.handle)):
            if sub.active:
                await self._stop_subscription(sub, why)

    async def end_subscriptions(self, address: str, handle: int) -> None:
        """End every session's subscription to one characteristic (plugins: abandoned ones)."""
        for sub in [s for s in self.sessions.on_link(address) if s.handle == handle]:
            if sub.active:
                await self._drop_subscription(sub, "unsubscribed")

    async def notifications(
        self, address: str, ref: str | int, max_items: int, wait_s: float
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

    def _find_subscription(self, address: str, ref: str | int) -> Subscription | None:
        """Find a subscription without touching the GATT tree: it may outlive its link."""
        from .values import parse_handle, parse_uuid

        handle = parse_handle(ref)
        if handle is not None:
            return self.sessions.mine(address, handle)
        uuid = parse_uuid(str(ref))
        owner = current_owner()
        found = [s for s in self.sessions.of(owner) if s.address == address and s.uuid == uuid]
        return found[0] if len(found) == 1 else None
