"""The shipped monitoring, end to end: a real Prometheus server scrapes a running ``mcp-ble
serve`` with the shipped scrape config (a test copy with a 1 s interval) and alert rules, while a
real MCP client drives scripted traffic: reads of a device that sometimes answers late, a device
whose connects always fail, notifications, and one stall (the server process stopped with SIGSTOP
for 0.8 s, as a blocking call or a swapped-out process would stop it). Through Prometheus's HTTP
API: the p95 of ble_operation_duration_seconds agrees with the profiler log of the same run within
one bucket, every dashboard expression returns data, the stall and failure alerts go pending."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from mcp_ble.plugins.metrics import OPERATION_BUCKETS

from tests.external import require_command
from tests.plugins.test_prometheus_rules import PROMETHEUS, dashboard_expressions

SENSOR = "A0:00:00:00:00:01"
BROKEN = "A0:00:00:00:00:02"

WORLD = f"""
name = "ops"
description = "A sensor that sometimes answers late, and a device that cannot be connected"
seed = 11

[[devices]]
address = "{SENSOR}"
name = "Ops Sensor"
adv_interval_ms = 50
service_uuids = ["180f"]

[devices.faults]
slow_response_ms = 120
slow_response_rate = 0.2

[[devices.services]]
uuid = "180f"

[[devices.services.characteristics]]
uuid = "2a19"
properties = ["read", "notify"]
generator = {{ kind = "counter", start = 90, step = -1, min = 5, max = 100 }}
notify_hz = 20

[[devices]]
address = "{BROKEN}"
name = "Ops Broken"
adv_interval_ms = 50

[devices.faults]
connect_failure_rate = 1.0
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def query(port: int, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(port, "query", query=expr)["result"]
    return result


async def wait_for(check, what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = await asyncio.to_thread(check)
        except OSError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


def bucket_index(seconds: float) -> int:
    """Index of the ble_operation_duration_seconds bucket holding ``seconds``."""
    return next(
        (i for i, le in enumerate(OPERATION_BUCKETS) if seconds <= le), len(OPERATION_BUCKETS)
    )


def profiler_p95(path: Path) -> float:
    durations = sorted(
        r["duration_s"]
        for r in map(json.loads, path.read_text().splitlines())
        if r["name"] != "scan"  # scans have their own histogram
    )
    return durations[math.ceil(0.95 * len(durations)) - 1]


async def test_prometheus_scrapes_alerts_and_dashboard(tmp_path):
    prometheus = require_command("prometheus")
    metrics_port, prom_port = free_port(), free_port()
    world = tmp_path / "ops.toml"
    world.write_text(WORLD)
    profile = tmp_path / "profile.jsonl"
    settings = tmp_path / "settings.toml"
    settings.write_text(
        'backend = "simulated"\n'
        'plugins = ["metrics", "retry", "profiler"]\n'
        f'[backends.simulated]\nworld = "{world}"\ntime_scale = 1.0\n'
        '[server]\nwrite_policy = "open"\nnotification_buffer = 4\n'
        f"[metrics]\nhttp_port = {metrics_port}\nsample_interval_s = 0.5\n"
        "[retry]\nmax_attempts = 2\ninitial_delay_s = 0.05\n"
        f'[profiler]\npath = "{profile}"\n'
    )
    # The shipped scrape config and rules; only the interval and the target differ.
    shipped = (PROMETHEUS / "prometheus.yml").read_text()
    assert "scrape_interval: 15s" in shipped and '"127.0.0.1:9464"' in shipped
    config = tmp_path / "prometheus.yml"
    config.write_text(
        shipped.replace("15s", "1s")
        .replace("127.0.0.1:9464", f"127.0.0.1:{metrics_port}")
        .replace("- alerts.yml", f"- {PROMETHEUS / 'alerts.yml'}")
    )
    prom = start_prometheus(prometheus, config, tmp_path, prom_port)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ble.core.cli", "serve", "--config", str(settings)],
        env=dict(os.environ),
    )
    try:
        async with Client(params) as client:
            # Prometheus has the server as an up target before any traffic: counters start at 0.
            await wait_for(
                lambda: [r for r in query(prom_port, "up") if r["value"][1] == "1"],
                "Prometheus to scrape mcp-ble",
            )
            scan = await client.call_tool("ble_scan", {"duration_s": 1})
            assert len(scan.structured_content["devices"]) == 2
            assert not (await client.call_tool("ble_connect", {"address": SENSOR})).is_error
            for _ in range(2):
                failed = await client.call_tool("ble_connect", {"address": BROKEN})
                assert failed.is_error
            assert not (
                await client.call_tool(
                    "ble_subscribe", {"address": SENSOR, "characteristic": "2a19"}
                )
            ).is_error
            for _ in range(40):
                read = await client.call_tool(
                    "ble_read", {"address": SENSOR, "characteristic": "2a19"}
                )
                assert not read.is_error
            # One stall: the whole server process stops for 0.8 s between two calls.
            server_pid = await asyncio.to_thread(find_server_pid, settings)
            os.kill(server_pid, signal.SIGSTOP)
            await asyncio.sleep(0.8)  # shorter than a scrape interval: one scrape at most is lost
            os.kill(server_pid, signal.SIGCONT)
            assert not (await client.call_tool("ble_status", {})).is_error

            def alerts_pending() -> set[str]:
                return {
                    a["labels"]["alertname"]
                    for a in api(prom_port, "alerts")["alerts"]
                    if a["state"] in ("pending", "firing")
                } >= {"BleEventLoopStall", "BleConnectionFailureRatio"}

            try:
                await wait_for(alerts_pending, "the stall and failure alerts to go pending")
            except AssertionError:
                seen = {
                    e: query(prom_port, e)
                    for e in (
                        "ble_event_loop_lag_max_seconds[30s]",
                        "ble_connection_failure_total",
                        "ble_connection_success_total",
                    )
                }
                raise AssertionError((api(prom_port, "alerts"), seen)) from None
            lag = query(prom_port, "max_over_time(ble_event_loop_lag_max_seconds[5m])")
            assert float(lag[0]["value"][1]) >= 0.7

            # Every operation the profiler logged has reached Prometheus (one more scrape).
            logged = sum(1 for line in profile.read_text().splitlines() if '"scan"' not in line)
            await wait_for(
                lambda: (
                    (r := query(prom_port, "sum(ble_operation_duration_seconds_count)"))
                    and float(r[0]["value"][1]) == logged
                ),
                "the last operations to be scraped",
            )
            [p95] = query(
                prom_port,
                "histogram_quantile(0.95, sum by (le) (ble_operation_duration_seconds_bucket))",
            )
            from_prometheus, from_log = float(p95["value"][1]), profiler_p95(profile)
            print(f"p95: Prometheus {from_prometheus:.4f} s, profiler log {from_log:.4f} s")
            assert abs(bucket_index(from_prometheus) - bucket_index(from_log)) <= 1, (
                from_prometheus,
                from_log,
            )

            empty = []
            for expr in dashboard_expressions():
                concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
                if not query(prom_port, concrete):
                    empty.append(expr)
            assert empty == []
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()


def start_prometheus(binary: str, config: Path, tmp_path: Path, port: int) -> subprocess.Popen:
    """Prometheus on loopback, its storage in the test's own folder, its log beside it."""
    with open(tmp_path / "prometheus.log", "w") as log:
        return subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def find_server_pid(settings: Path) -> int:
    """The ``mcp-ble serve`` started for this test (its command line names our settings file)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmdline and str(settings).encode() in cmdline:  # ours alone
            return int(entry.name)
    raise AssertionError("the mcp-ble serve process was not found")
