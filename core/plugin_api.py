"""What a plugin may use: the app as every hook's ``app`` argument sees it.

:class:`PluginApp` is the whole surface. Hooks receive it as ``app``; plugins read the state
through immutable views (links, subscriptions, tracked devices) and act through a few methods
(release a link, end a subscription, forget old devices, drop ended buffers, run work
periodically on the backend's clock). Nothing here hands out a mutable structure of the core, so
the core can change how it keeps state without breaking a plugin. The built-in plugins use this
and nothing else (``tests/core/test_plugin_api.py`` checks it).

A plugin declares its settings once, as a class attribute ``settings_model`` (a pydantic model):
the core registers the section named after the plugin (``[pool]`` for ``plugins = ["pool"]``),
validates it with the rest of the settings file, and sets ``self.settings`` on the plugin's
instance before any hook runs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .app import BleApp, Subscription
    from .models import SensorReading
    from .settings import CoreSettings

log = logging.getLogger("mcp_ble")


@dataclass(frozen=True, slots=True)
class LinkView:
    """A link that is up."""

    address: str
    mtu: int
    #: Seconds since an operation last used the link.
    idle_s: float
    #: An operation is under way on it (a link must not be released then: it would fail).
    busy: bool
    #: Subscriptions on it that still receive.
    active_subscriptions: int
    #: MCP sessions using it (core/sessions.py); 0 once the last one has ended or left.
    sessions: int = 0
    #: The radio holding it, when several serve (core/fleet.py).
    radio: str | None = None


@dataclass(frozen=True, slots=True)
class RadioView:
    """One radio: its configured name (the backend's name when it is the only one)."""

    name: str
    backend: str
    #: ``ready``, ``lost`` or ``recovering``, and why when not ready.
    state: str
    reason: str
    #: Links it holds (or reports in use) and how many it can hold (None: unknown).
    used: int
    limit: int | None
    #: Devices it heard within ``server.recent_s`` (one radio: every device heard).
    heard: int


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A subscription: active, or ended with notifications still buffered."""

    address: str
    handle: int
    uuid: str
    active: bool
    #: Notifications received since subscribing.
    received: int
    #: Notifications waiting to be drained.
    buffered: int
    #: Notifications lost because the buffer was full.
    dropped: int
    #: Seconds since someone drained it (or since subscribing).
    undrained_s: float
    #: Seconds since it ended; ``None`` while active.
    ended_s: float | None


class PluginApp:
    """The app as plugins see it. One per app; pass nothing of the core out of it."""

    __slots__ = ("_app",)

    def __init__(self, app: BleApp) -> None:
        self._app = app

    # ------------------------------------------------------------------ settings and lifecycle

    @property
    def settings(self) -> CoreSettings:
        """The validated settings (read them; a plugin's own section is also ``self.settings``)."""
        return self._app.settings

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The app's own Prometheus registry (never the process-global one)."""
        return self._app.metrics_registry

    def now(self) -> float:
        """Seconds on the backend's clock (simulated time on the simulated backend)."""
        return self._app.radio.now()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` for the app's lifetime; the core cancels it at shutdown."""
        return self._app.spawn(coro)

    def every(
        self,
        interval_s: float,
        fn: Callable[[], Awaitable[object] | object],
        wall_clock: bool = False,
    ) -> asyncio.Task[Any]:
        """Call ``fn`` (sync or async) every ``interval_s`` seconds of the backend's clock until
        shutdown, the first time one interval after this call. An exception in ``fn`` is logged
        and the next call still happens. ``wall_clock=True`` counts real seconds instead: for
        sampling the process itself (memory, CPU, event-loop lag), which lives in real time."""
        if not interval_s > 0:
            raise ValueError(f"every(): interval_s must be > 0, got {interval_s!r}")
        wait = asyncio.sleep if wall_clock else self._app.radio.sleep_background

        async def repeat() -> None:
            while True:
                await wait(interval_s)
                try:
                    result = fn()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("periodic plugin task %r failed", fn)

        return self._app.spawn(repeat())

    # ------------------------------------------------------------------ views

    def links(self) -> list[LinkView]:
        """Every link that is up."""
        app, now = self._app, self._app.now()
        return [
            LinkView(
                address=c.address,
                mtu=c.mtu,
                idle_s=now - c.last_used,
                busy=c.address in app.in_flight,
                active_subscriptions=sum(s.active for s in app.subscriptions_of(c.address)),
                sessions=len(app.sessions.link_users.get(c.address, ())),
                radio=c.radio,
            )
            for c in list(app.connections.values())
        ]

    def subscriptions(self, address: str | None = None) -> list[SubscriptionView]:
        """Every subscription (or those of one device), active or ended with a buffer left."""
        subs = self._app.subscriptions_of(address)
        now = self._app.now()
        return [_subscription_view(s, now) for s in subs]

    def subscribes_under_way(self) -> list[tuple[str, int]]:
        """(address, handle) of the subscribes started but not finished, oldest first."""
        return list(self._app.subscribing)

    def radios(self) -> list[RadioView]:
        """Every radio, in the settings' order (one when ``[[radios]]`` is not used)."""
        return self._app.radio_views()

    def radio_state(self) -> str:
        """``ready``, ``lost`` or ``recovering``: whether the backend's radio is there."""
        backend = self._app.backend
        return backend.health.state if backend is not None else "ready"

    def tracked_devices(self) -> int:
        """How many devices the tracker holds."""
        return len(self._app.tracker)

    def notification_totals(self) -> tuple[int, int]:
        """(received, dropped) notifications since start: received from the radio, and lost to
        a full buffer (once per buffer that lost one). Both only grow."""
        return self._app.notifications_received, self._app.notifications_dropped

    def devices_heard_within(self, seconds: float) -> int:
        """How many tracked devices advertised in the last ``seconds``."""
        return len(self._app.tracker.recent(seconds))

    def sensor_readings(self, address: str) -> list[tuple[SensorReading, float]]:
        """A device's latest decoded advertisement readings with when each was heard (on the
        backend's clock), by reading name; empty when none were decoded."""
        return self._app.sensors.latest(address)

    # ------------------------------------------------------------------ actions

    async def release(self, address: str) -> bool:
        """Disconnect a link (its subscriptions end; their buffers stay readable).
        Returns whether a link was up."""
        return await self._app.disconnect(address)

    async def end_subscription(self, address: str, handle: int) -> None:
        """End the subscriptions to one characteristic, every MCP session's (the radio
        subscription stops)."""
        await self._app.end_subscriptions(address, handle)

    def forget_devices_older_than(self, seconds: float) -> int:
        """Drop devices not heard for ``seconds`` from the tracker, and their sensor readings;
        returns how many left the tracker."""
        self._app.sensors.forget_older_than(seconds)
        return self._app.tracker.forget_older_than(seconds)

    def drop_ended_subscriptions(self, older_than_s: float) -> int:
        """Drop subscriptions that ended over ``older_than_s`` ago, with whatever they still
        buffered; returns how many."""
        now = self._app.now()
        stale = [
            s
            for s in self._app.subscriptions_of(None)
            if s.ended_at is not None and now - s.ended_at > older_than_s
        ]
        for sub in stale:
            self._app.discard_subscription(sub)
        return len(stale)


def _subscription_view(sub: Subscription, now: float) -> SubscriptionView:
    return SubscriptionView(
        address=sub.address,
        handle=sub.handle,
        uuid=sub.uuid,
        active=sub.active,
        received=sub.received,
        buffered=len(sub.items),
        dropped=sub.dropped,
        undrained_s=now - sub.last_drained,
        ended_s=None if sub.ended_at is None else now - sub.ended_at,
    )
