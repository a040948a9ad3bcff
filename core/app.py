"""The application: one backend, the enabled plugins, and all device state.

``BleApp`` owns the async flow. Every public operation validates its input, asks the plugins for
decisions through hooks, performs the I/O on the backend, and reports events. MCP tools and the CLI
are thin layers over these methods.

This module holds its state, lifecycle, hook calls and scans; the rest of its methods are kept by
what changes together, in mixins: :mod:`.app_links` (connect, disconnect, link health),
:mod:`.app_subscriptions` (notification buffers per session) and :mod:`.app_operations` (backend
calls under deadlines and retries; reads, writes, descriptors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from .app_links import Connection, Links
from .app_operations import DescriptorOutcome, Operations, ReadOutcome, WriteOutcome, write_attempt
from .app_subscriptions import Subscription, Subscriptions
from .backend import Backend
from .deadlines import Abandoned
from .decoding import Codec
from .errors import ConfigError, InvalidInput
from .fleet import Fleet, Radio, fleet_views
from .locks import KeyedLocks
from .models import ScanFilter
from .mtu import MtuChoices
from .plans import ScanPlan, SubscribePlan
from .plugin_api import PluginApp, RadioView
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
from .policy import WriteGuard
from .scanning import ScanBroker
from .sensors import SensorStore
from .sessions import Sessions
from .settings import CoreSettings, LoadedSettings
from .tracker import AdvertisementTracker, DeviceRecord
from .values import shown_number

__all__ = [
    "BleApp",
    "Connection",
    "DescriptorOutcome",
    "ReadOutcome",
    "ScanOutcome",
    "Subscription",
    "WriteOutcome",
    "write_attempt",
]


log = logging.getLogger("mcp_ble")


@dataclass
class ScanOutcome:
    devices: list[DeviceRecord]
    matched: int
    heard: int
    duration_s: float
    plan: ScanPlan


class BleApp(Links, Subscriptions, Operations):
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
            for name, obj in catalog.resolve_settings(
                settings, loaded.config_path if loaded is not None else None
            )
        ]
        for name, plugin in self.plugins:
            inject_settings(plugin, name, settings)
        self.pm = build_plugin_manager(self.plugins, trace=settings.trace_hooks)
        #: What plugins see as ``app`` (core/plugin_api.py).
        self.api = PluginApp(self)
        self.hook = self.pm.hook
        #: The decoding hooks: values decoded, typed values encoded, UUIDs named.
        self.codec = Codec(self.hook)
        self.tracker = AdvertisementTracker(settings.server.max_tracked_devices, clock=self.now)
        #: Sensor readings decoded from advertisements (core/sensors.py); enabled when a
        #: decoder plugin is.
        self.sensors = SensorStore(
            self.hook.mcp_ble_decode_advertisement,
            settings.server.max_tracked_devices,
            clock=self.now,
        )
        self.sensors.enabled = bool(self.hook.mcp_ble_decode_advertisement.get_hookimpls())
        #: The write policy and audit log; every write, descriptor write and pairing passes it.
        self.guard = WriteGuard(settings.server, self.tracker)
        self.connections: dict[str, Connection] = {}
        #: Why the latest links that dropped without our asking ended: address -> (reason,
        #: when), the newest LINK_ENDS_KEPT (a call on such an address says why it has none).
        self.link_ends: dict[str, tuple[str, float]] = {}
        #: Operations under way per address (connects included); the pool never releases these.
        self.in_flight: dict[str, int] = {}
        #: One subscription per characteristic: the one the radio feeds (its peers, other
        #: sessions' subscriptions to the same characteristic, are fed with it).
        self.subscriptions: dict[tuple[str, int], Subscription] = {}
        #: Who holds what, per MCP session (core/sessions.py).
        self.sessions = Sessions()
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.backend: Backend | None = None
        #: The radios when ``[[radios]]`` configures them (the backend is then this fleet).
        self.fleet: Fleet | None = None
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
        self.backend = self._build_backend()
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

    def _build_backend(self) -> Backend:
        """The backend, or with ``[[radios]]`` a fleet of them (core/fleet.py)."""
        registered = RegisteredBackends(self.catalog, self.settings)
        specs = self.settings.radio_list()
        built = [
            (spec, self.catalog.backends[spec.backend].factory(spec.settings, registered))
            for spec in specs
        ]
        if not self.settings.radios:
            return built[0][1]  # type: ignore[no-any-return]
        fleet = Fleet([Radio(spec.name, backend, spec.slots) for spec, backend in built])
        fleet.hearing = self._hearing
        fleet.listeners.append(self._on_fleet_radio)
        self.fleet = fleet
        return fleet

    def _hearing(self, address: str) -> dict[str, tuple[float, float]] | None:
        record = self.tracker.get(address)
        return record.heard_by if record is not None else None

    def _on_fleet_radio(self, name: str, state: str, reason: str) -> None:
        """A radio of several went away: its reports stop counting (its links were ended by
        the fleet with the reason)."""
        if state == "lost":
            self.tracker.forget_radio(name)

    @property
    def backend_name(self) -> str:
        """The backend's name for messages: the settings' backend, or ``fleet``."""
        return "fleet" if self.settings.radios else self.settings.backend

    def radio_names(self) -> list[str]:
        """The configured radios' names (one: the backend's name)."""
        return [spec.name for spec in self.settings.radio_list()]

    def radio_views(self) -> list[RadioView]:
        """Each radio's health, slots and devices heard (ble_status, doctor, metrics)."""
        recent = list(self.tracker.heard_within(self.settings.server.recent_s))
        if self.fleet is not None:
            return fleet_views(self.fleet, recent)
        backend = self.radio
        reported = backend.connection_slots()
        health = backend.health
        return [
            RadioView(
                self.settings.backend,
                backend.info().name,
                health.state,
                health.reason,
                max(len(self.connections), reported[0] if reported else 0),
                reported[1] if reported else None,
                len(recent),
            )
        ]

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
        self.sensors.enabled = bool(self.hook.mcp_ble_decode_advertisement.get_hookimpls())

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

    # ------------------------------------------------------------------ discovery

    async def scan(
        self,
        duration_s: float | None,
        scan_filter: ScanFilter,
        limit: int | None = None,
        until: Callable[[], bool] | None = None,
    ) -> ScanOutcome:
        """Scan for ``duration_s`` (plugins may adjust it); return matching devices by RSSI.
        With ``limit``, the scan ends as soon as ``limit`` distinct devices matching the filter
        have been heard (a caller looking for one named device waits for that device only);
        with ``until``, as soon as it returns true (checked with each advertisement)."""
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
            until=until,
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
