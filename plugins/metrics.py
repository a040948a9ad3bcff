"""Prometheus metrics (https://prometheus.io/docs/practices/naming/ for names and units).

Exposes discovery, connection and transfer histograms and counters on the app's own registry, plus
what explains them: operations by outcome, retries, notifications received and dropped, histograms
wide enough to show the tail (operation latency from 1 ms to the 30 s ATT transaction timeout, Core
spec Vol 3, Part F, 3.3.3; connection time up to the connect timeout; throughput per transfer).
Every duration counts on the backend's clock. Sampled gauges (memory, CPU, event loop lag, active
connections) are refreshed by a monitor task every ``sample_interval_s`` and right before each
exposition; a 50 ms tick keeps the worst event-loop lag of the last two scrape periods, so a stall
that ends between two samples still shows. Read them through the MCP resource ``ble://metrics``
or, with ``http_port`` set, from ``http://<http_host>:<http_port>/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.errors import ConfigError
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plugin_api import PluginApp
from mcp_ble.core.settings_radios import NO_RADIO

log = logging.getLogger("mcp_ble.metrics")

DISCOVERY_BUCKETS = (0.1, 0.5, 1, 2, 5)
CONNECTION_BUCKETS = (0.1, 0.5, 1, 2, 5)
TRANSFER_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1)
#: ble_operation_duration_seconds: 1 ms up to the ATT transaction timeout (30 s).
OPERATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: ble_transfer_throughput_bytes_per_second: from a slow 23-byte-MTU link to 2M PHY figures.
THROUGHPUT_BUCKETS = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
_CONNECT_STEPS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


def connect_buckets(timeout_s: float) -> tuple[float, ...]:
    """Buckets of ble_connect_duration_seconds: 10 ms up to the connect timeout, which is the
    last bucket (a connect cannot take longer)."""
    return (*(b for b in _CONNECT_STEPS if b < timeout_s), timeout_s)


class MetricsSettings(BaseModel):
    """``[metrics]``"""

    model_config = ConfigDict(extra="forbid")

    http_port: int | None = Field(
        None, ge=0, le=65535, description="serve /metrics over HTTP on this port (unset: off)"
    )
    http_host: str = Field("127.0.0.1", description="address the HTTP endpoint binds to")
    sample_interval_s: float = Field(
        1.0, gt=0, le=3600, description="how often memory, CPU and event-loop lag are sampled"
    )
    rate_window_s: float = Field(
        10.0, gt=0, le=3600, description="window of ble_transfer_rate_bytes_per_second"
    )
    stall_tick_s: float = Field(
        0.05,
        gt=0,
        le=10,
        description="tick of the stall monitor (ble_event_loop_lag_max_seconds)",
    )


def resident_memory_bytes() -> int | None:
    """Resident set size of this process, where the platform tells it cheaply."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # peak, the best we have
    except ImportError:  # Windows
        return None


class TransferRate:
    """Bytes per second over a sliding window."""

    def __init__(self, window_s: float, clock=time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, nbytes: int) -> None:
        self.samples.append((self.clock(), nbytes))
        self.total += nbytes

    def rate(self) -> float:
        now = self.clock()
        cutoff = now - self.window_s
        while self.samples and self.samples[0][0] < cutoff:
            self.total -= self.samples.popleft()[1]
        return self.total / self.window_s


class StallMonitor:
    """The worst event-loop lag of the last two scrape periods: a task sleeps ``tick_s`` and
    notes how late it woke, so a blocking call of any length shows, however short the stall and
    however long the sampling interval. Two periods, because a stall tends to make the scrape
    under way time out: that scrape is answered once the loop runs again and Prometheus throws
    the answer away; the next scrape still reports the stall."""

    def __init__(self, tick_s: float) -> None:
        self.tick_s = tick_s
        self._worst = 0.0  # this period
        self._previous = 0.0  # the period before the last scrape
        self._lock = threading.Lock()  # the HTTP exporter scrapes from its own thread

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.tick_s
        while True:
            before = loop.time()
            await asyncio.sleep(tick)
            lag = loop.time() - before - tick
            if lag > self._worst:
                with self._lock:
                    self._worst = max(self._worst, lag)

    def take(self) -> float:
        """The worst lag since the scrape before last; starts a new period."""
        with self._lock:
            worst = max(self._worst, self._previous)
            self._previous, self._worst = self._worst, 0.0
        return worst


class ScrapeCollector(Collector):
    """Series read at scrape time: the core's notification counters and the stall maximum."""

    def __init__(self, app: PluginApp, stall: StallMonitor) -> None:
        self.app = app
        self.stall = stall

    def describe(self) -> list[Metric]:
        return []  # not known before a scrape; keeps registration from calling collect()

    def collect(self) -> Iterator[Metric]:
        received, dropped = self.app.notification_totals()
        yield CounterMetricFamily(
            "ble_notifications_received",
            "Notifications and indications received from the radio",
            value=received,
        )
        yield CounterMetricFamily(
            "ble_notifications_dropped",
            "Notifications lost because a subscription's buffer was full (once per buffer)",
            value=dropped,
        )
        yield GaugeMetricFamily(
            "ble_event_loop_lag_max_seconds",
            "Worst event-loop lag since the scrape before the previous one",
            value=self.stall.take(),
        )


class MetricsPlugin:
    """One instance per app: its collectors live on that app's registry only."""

    settings_model = MetricsSettings
    settings: MetricsSettings

    def __init__(self) -> None:
        self._http: Any = None
        self._cpu_mark: tuple[float, float] | None = None

    @hookimpl
    def mcp_ble_register_metrics(self, registry: CollectorRegistry, app: PluginApp) -> None:
        self.rate = TransferRate(self.settings.rate_window_s)
        r = registry
        self.discovery_time = Histogram(
            "ble_discovery_time_seconds",
            "Time taken to discover devices",
            buckets=DISCOVERY_BUCKETS,
            registry=r,
        )
        self.devices_found = Counter(
            "ble_devices_found_total", "Total number of devices discovered", registry=r
        )
        self.connection_time = Histogram(
            "ble_connection_time_seconds",
            "Time taken to connect to devices",
            buckets=CONNECTION_BUCKETS,
            registry=r,
        )
        self.connection_success = Counter(
            "ble_connection_success_total", "Total number of successful connections", registry=r
        )
        self.connection_failure = Counter(
            "ble_connection_failure_total", "Total number of failed connections", registry=r
        )
        self.transfer_rate = Gauge(
            "ble_transfer_rate_bytes_per_second", "Current data transfer rate", registry=r
        )
        self.transfer_latency = Histogram(
            "ble_transfer_latency_seconds",
            "Data transfer latency",
            buckets=TRANSFER_BUCKETS,
            registry=r,
        )
        self.memory = Gauge("ble_memory_usage_bytes", "Current memory usage", registry=r)
        self.cpu = Gauge("ble_cpu_usage_percent", "Current CPU usage percentage", registry=r)
        self.loop_lag = Gauge("ble_event_loop_lag_seconds", "Event loop lag", registry=r)
        self._register_operator_metrics(r, app)
        self.app = app

    def _register_operator_metrics(self, r: CollectorRegistry, app: PluginApp) -> None:
        """What an operator needs to see why the figures of mcp_ble_register_metrics moved.
        With several radios, operations, links and radio states carry a ``radio`` label (its
        values are the configured names: bounded by the settings)."""
        self.radio_names = [v.name for v in app.radios()]
        self.several = len(self.radio_names) > 1
        by_radio = ["radio"] if self.several else []
        self.operations = Counter(
            "ble_operations_total",
            "GATT and link operations by kind and outcome",
            ["kind", "outcome", *by_radio],
            registry=r,
        )
        self.retries = Counter(
            "ble_retries_total",
            "Attempts beyond the first, by operation kind",
            ["kind"],
            registry=r,
        )
        self.disconnects = Counter(
            "ble_disconnects_total", "Links that went down", ["requested"], registry=r
        )
        self.operation_duration = Histogram(
            "ble_operation_duration_seconds",
            "Duration of GATT and link operations (retries included), by operation",
            ["operation"],
            buckets=OPERATION_BUCKETS,
            registry=r,
        )
        self.connect_duration = Histogram(
            "ble_connect_duration_seconds",
            "Time taken by successful connections, up to the connect timeout",
            buckets=connect_buckets(app.settings.server.connect_timeout_s),
            registry=r,
        )
        self.throughput = Histogram(
            "ble_transfer_throughput_bytes_per_second",
            "Payload bytes per second of each finished read or write",
            buckets=THROUGHPUT_BUCKETS,
            registry=r,
        )
        self.devices_recent = Gauge(
            "ble_devices_recent",
            "Distinct devices heard within server.recent_s",
            registry=r,
        )
        self.stall = StallMonitor(self.settings.stall_tick_s)
        r.register(ScrapeCollector(app, self.stall))
        self.connections = Gauge(
            "ble_connections_active", "Links currently up", by_radio, registry=r
        )
        self.tracked = Gauge("ble_tracked_devices", "Devices in the tracker", registry=r)
        self.radio_state = Gauge(
            "ble_radio_state",
            "1 for the radio's current state (ready, lost, recovering), 0 for the others",
            ["state", *by_radio],
            registry=r,
        )
        if self.several:
            self.radio_heard = Gauge(
                "ble_radio_devices_recent",
                "Distinct devices each radio heard within server.recent_s",
                ["radio"],
                registry=r,
            )
            self.radio_slots = Gauge(
                "ble_radio_slots",
                "Each radio's connection slots: used, and its limit when known",
                ["radio", "slots"],
                registry=r,
            )

    @hookimpl
    async def mcp_ble_startup(self, app: PluginApp) -> None:
        # Sampling runs whether or not the HTTP exporter is on (ble://metrics reads it too).
        # The process is sampled in real time: memory, CPU and loop lag are not radio figures.
        app.every(self.settings.sample_interval_s, self._monitor, wall_clock=True)
        app.spawn(self.stall.run())
        port = self.settings.http_port
        if port is None:
            return
        from prometheus_client import start_http_server

        host = self.settings.http_host
        try:
            self._http = start_http_server(port, addr=host, registry=app.metrics_registry)
        except OSError as exc:  # busy port, address not on this machine, unknown name
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"metrics.http_port = {port}: cannot serve /metrics on {host}:{port} "
                f"({reason}); choose a free port, or unset metrics.http_port"
            ) from None
        log.info("metrics on http://%s:%s/metrics", host, self._http[0].server_port)

    @hookimpl
    def mcp_ble_shutdown(self) -> None:
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=2)
            self._http = None

    @property
    def http_port(self) -> int | None:
        """The bound port (useful with ``http_port = 0``, which picks a free one)."""
        return self._http[0].server_port if self._http else None

    async def _monitor(self) -> None:
        # Event-loop lag: how long a task that is ready to run waits for its turn (real time,
        # whatever clock the backend keeps).
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(0)
        self.loop_lag.set(loop.time() - before)
        self.sample()

    def sample(self) -> None:
        memory = resident_memory_bytes()
        if memory is not None:
            self.memory.set(memory)
        now = (time.monotonic(), time.process_time())
        if self._cpu_mark is not None:
            wall = now[0] - self._cpu_mark[0]
            if wall > 0:
                self.cpu.set(100.0 * (now[1] - self._cpu_mark[1]) / wall)
        self._cpu_mark = now
        self.transfer_rate.set(self.rate.rate())
        self.tracked.set(self.app.tracked_devices())
        if self.several:
            links = self.app.links()
            for view in self.app.radios():
                self.radio_heard.labels(radio=view.name).set(view.heard)
                self.radio_slots.labels(radio=view.name, slots="used").set(view.used)
                if view.limit is not None:
                    self.radio_slots.labels(radio=view.name, slots="limit").set(view.limit)
                self.connections.labels(radio=view.name).set(
                    sum(1 for link in links if link.radio == view.name)
                )
                for state in ("ready", "lost", "recovering"):
                    self.radio_state.labels(state=state, radio=view.name).set(
                        1 if state == view.state else 0
                    )
        else:
            self.connections.set(len(self.app.links()))
            current = self.app.radio_state()
            for state in ("ready", "lost", "recovering"):
                self.radio_state.labels(state=state).set(1 if state == current else 0)
        self.devices_recent.set(self.app.devices_heard_within(self.app.settings.server.recent_s))

    @hookimpl
    def mcp_ble_collect_metrics(self) -> None:
        self.sample()

    @hookimpl
    def mcp_ble_scan_finished(self, found: int, duration_s: float) -> None:
        self.discovery_time.observe(duration_s)
        self.devices_found.inc(found)

    @hookimpl
    def mcp_ble_connected(self, duration_s: float) -> None:
        self.connection_time.observe(duration_s)
        self.connect_duration.observe(duration_s)
        self.connection_success.inc()

    @hookimpl
    def mcp_ble_connect_failed(self) -> None:
        self.connection_failure.inc()

    @hookimpl
    def mcp_ble_disconnected(self, requested: bool) -> None:
        self.disconnects.labels(requested=str(requested).lower()).inc()

    @hookimpl
    def mcp_ble_operation_finished(
        self, operation: Any, duration_s: float, nbytes: int, error: Any
    ) -> None:
        kind = operation.kind
        outcome = "error" if error else "ok"
        if self.several:
            # A connect that no radio took (every one full, none hears the device) counts
            # under NO_RADIO, a name no radio may have: the values stay the configured names.
            radio = operation.radio if operation.radio in self.radio_names else NO_RADIO
            self.operations.labels(kind=kind, outcome=outcome, radio=radio).inc()
        else:
            self.operations.labels(kind=kind, outcome=outcome).inc()
        self.operation_duration.labels(operation=kind).observe(duration_s)
        if operation.attempts > 1:
            self.retries.labels(kind=kind).inc(operation.attempts - 1)
        if error is None and kind not in ("connect", "discover", "subscribe", "unsubscribe"):
            self.transfer_latency.observe(duration_s)
            if nbytes:
                self.rate.add(nbytes)
                if duration_s > 0:
                    self.throughput.observe(nbytes / duration_s)
