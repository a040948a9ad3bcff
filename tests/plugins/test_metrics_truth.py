"""Metrics that tell the truth: one clock, counters that only grow, the tail visible, stalls
seen between samples."""

from __future__ import annotations

import asyncio
import time

from mcp_ble.core.models import ScanFilter
from mcp_ble.plugins.metrics import OPERATION_BUCKETS, connect_buckets

from tests.helpers import make_app

HRM = "C4:7C:8D:6A:12:01"


async def test_every_duration_counts_on_the_backends_clock(tmp_path):
    # Frozen virtual clock: wall time passes, simulated time only when the radio waits. Were
    # connect or read timed on the wall clock they would disagree with the simulated link.
    async with make_app(tmp_path, time_scale=0) as app:
        await app.scan(2.0, ScanFilter())
        t0 = app.now()
        await app.connect(HRM)
        connect_s = app.now() - t0
        t1 = app.now()
        await app.read(HRM, "2a19")
        read_s = app.now() - t1
        value = app.metrics_registry.get_sample_value
        assert value("ble_discovery_time_seconds_sum") == 2.0
        assert connect_s > 0.005  # a simulated connect takes connection events
        assert value("ble_connection_time_seconds_sum") == connect_s
        assert value("ble_connect_duration_seconds_sum") == connect_s
        assert value("ble_operation_duration_seconds_sum", {"operation": "connect"}) == connect_s
        read = value("ble_operation_duration_seconds_sum", {"operation": "read"})
        assert 0 < read <= read_s


async def test_histograms_reach_the_tail(tmp_path):
    assert OPERATION_BUCKETS[0] == 0.001 and OPERATION_BUCKETS[-1] == 30
    assert connect_buckets(20.0)[-1] == 20.0 and connect_buckets(20.0)[-2] == 10
    assert connect_buckets(3.0) == (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3.0)
    async with make_app(tmp_path, "[server]\nconnect_timeout_s = 3.0\n", time_scale=0) as app:
        await app.connect(HRM)
        value = app.metrics_registry.get_sample_value
        assert value("ble_connect_duration_seconds_bucket", {"le": "3.0"}) == 1
        assert value("ble_connect_duration_seconds_bucket", {"le": "+Inf"}) == 1


async def test_notification_counters_only_grow(tmp_path):
    async with make_app(tmp_path, "[server]\nnotification_buffer = 2\n", time_scale=0) as app:
        await app.connect(HRM)
        await app.subscribe(HRM, "2a37")
        await app.radio.sleep(5.0)  # about one notification a second, never drained
        value = app.metrics_registry.get_sample_value
        received = value("ble_notifications_received_total")
        dropped = value("ble_notifications_dropped_total")
        assert received >= 3 and dropped == received - 2
        await app.unsubscribe(HRM, "2a37")
        app.api.drop_ended_subscriptions(-1)  # the buffer and its figures are gone
        assert app.subscriptions_of(None) == []
        assert value("ble_notifications_received_total") == received
        assert value("ble_notifications_dropped_total") == dropped


async def test_devices_heard_recently_is_distinct(tmp_path):
    async with make_app(tmp_path, time_scale=0) as app:
        await app.scan(1.0, ScanFilter())
        await app.scan(1.0, ScanFilter())
        app.collect_metrics()
        value = app.metrics_registry.get_sample_value
        assert value("ble_devices_found_total") == 14  # seven devices, counted in each scan
        assert value("ble_devices_recent") == 7


async def test_a_stall_between_samples_shows_at_the_next_scrape(tmp_path):
    async with make_app(tmp_path, "[metrics]\nsample_interval_s = 60\n") as app:
        await asyncio.sleep(0.12)  # the stall monitor is ticking
        value = app.metrics_registry.get_sample_value
        value("ble_event_loop_lag_max_seconds")  # scrapes: new periods start
        value("ble_event_loop_lag_max_seconds")
        time.sleep(0.3)  # noqa: ASYNC251 - blocks the event loop, as a stuck handler would
        await asyncio.sleep(0.12)
        assert value("ble_event_loop_lag_max_seconds") >= 0.2
        # Still there at the next scrape (the one during a stall often times out), then gone.
        assert value("ble_event_loop_lag_max_seconds") >= 0.2
        assert value("ble_event_loop_lag_max_seconds") < 0.2
