"""Prometheus exposition, checked by Prometheus's own tools (promtool and the client's parser),
over the MCP resource and the optional HTTP endpoint."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mcp_ble.core.models import ScanFilter
from mcp_ble.core.server import metrics_text

from tests.external import require_command
from tests.helpers import make_app

HRM = "C4:7C:8D:6A:12:01"


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


async def exercised(app):
    await app.scan(2.0, ScanFilter())
    await app.connect(HRM)
    await app.read(HRM, "2a19")
    await app.subscribe(HRM, "2a37")
    return metrics_text(app)


async def test_promtool_accepts_the_exposition(tmp_path):
    # Skips when promtool is missing (make test installs Debian's prometheus package), but
    # fails under CI=true.
    promtool = require_command("promtool")
    async with make_app(tmp_path) as app:
        text = await exercised(app)
    proc = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == ""  # no lint findings either


async def test_metrics_record_what_happened(tmp_path):
    async with make_app(tmp_path) as app:
        text = await exercised(app)
        value = app.metrics_registry.get_sample_value
        assert value("ble_discovery_time_seconds_count") == 1
        assert value("ble_devices_found_total") == 7
        assert value("ble_connection_success_total") == 1
        assert value("ble_connection_failure_total") == 0
        assert value("ble_connection_time_seconds_count") == 1
        assert value("ble_transfer_latency_seconds_count") == 1
        assert value("ble_operations_total", {"kind": "read", "outcome": "ok"}) == 1
        assert value("ble_connections_active") == 1
        assert value("ble_memory_usage_bytes") > 1_000_000
        assert value("ble_tracked_devices") == 7
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"ble_discovery_time_seconds", "ble_event_loop_lag_seconds"} <= families


async def test_http_endpoint_serves_the_same_registry(tmp_path):
    app = make_app(tmp_path, '[metrics]\nhttp_port = 0\nhttp_host = "127.0.0.1"\n')
    async with app:
        await exercised(app)
        plugin = dict(app.plugins)["metrics"]
        port = plugin.http_port
        assert port
        body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
        assert "ble_connection_success_total 1.0" in body
    assert plugin.http_port is None  # shut down with the app
