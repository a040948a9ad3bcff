"""The optimization plugins, each through the core as a user drives it."""

from __future__ import annotations

import asyncio

import pytest
from mcp.client import Client

from mcp_ble.core.errors import NotPermitted, ValueTooLong
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.server import build_server
from mcp_ble.plugins.adaptive_scan import AdaptiveScanSettings, adaptive_duration
from mcp_ble.plugins.cleanup import CleanupSettings, sweep

from tests.helpers import make_app

HRM = "C4:7C:8D:6A:12:01"
THERMO = "E8:31:CD:44:09:7A"
UART = "F1:22:9B:03:5E:C0"
EARBUDS = "38:18:4C:B2:77:10"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


async def scanned(app):
    await app.scan(2.0, ScanFilter())
    return app


async def test_pool_releases_the_least_recently_used_link(tmp_path):
    app = make_app(tmp_path, 'plugins = ["pool"]\n[pool]\nmax_connections = 2\n')
    async with app:
        await scanned(app)
        await app.connect(HRM)
        await app.connect(THERMO)
        await app.read(HRM, "2a19")  # HRM is now the most recently used
        conn, _ = await app.connect(UART)
        assert set(app.connections) == {HRM, UART}
        assert conn.notes == [
            f"pool: released {THERMO} (least recently used) to stay within max_connections=2"
        ]


async def test_pool_keeps_subscribed_links_while_others_can_go(tmp_path):
    app = make_app(tmp_path, 'plugins = ["pool"]\n[pool]\nmax_connections = 2\n')
    async with app:
        await scanned(app)
        await app.connect(UART)
        await app.subscribe(UART, NUS_TX)
        await app.connect(THERMO)
        await app.connect(HRM)
        assert set(app.connections) == {UART, HRM}


async def test_pool_closes_idle_links(tmp_path):
    app = make_app(
        tmp_path, 'plugins = ["pool"]\n[pool]\nidle_timeout_s = 0.05\nkeep_subscribed = true\n'
    )
    async with app:
        await scanned(app)
        await app.connect(HRM)
        await app.connect(UART)
        await app.subscribe(UART, NUS_TX)
        for _ in range(100):
            if HRM not in app.connections:
                break
            await asyncio.sleep(0.02)
        assert set(app.connections) == {UART}


async def test_without_chunking_an_oversized_write_is_refused(tmp_path):
    app = make_app(tmp_path, "plugins = []")
    async with app:
        await scanned(app)
        await app.connect(UART)
        with pytest.raises(ValueTooLong, match="at most 244 bytes per write"):
            await app.write(UART, NUS_RX, bytes(600), "false")
        with pytest.raises(ValueTooLong, match="Enable the 'chunking' plugin"):
            await app.write(UART, NUS_RX, bytes(600), "true")


async def test_chunking_streams_mtu_sized_writes(tmp_path):
    app = make_app(tmp_path, 'plugins = ["chunking"]')
    async with app:
        await scanned(app)
        await app.connect(UART)
        sub, _ = await app.subscribe(UART, NUS_TX)
        data = bytes(range(256)) * 4 + b"tail"
        outcome = await app.write(UART, NUS_RX, data, "false")
        assert outcome.chunks == 5 and outcome.nbytes == len(data)
        assert "1028 bytes as 5 writes of up to 244 bytes (MTU 247)" in outcome.notes[0]
        items = []
        for _ in range(50):
            items += (await app.notifications(UART, NUS_TX, 100, 1))[1]
            if sum(len(d) for _, d in items) >= len(data):
                break
        assert [len(d) for _, d in items] == [244, 244, 244, 244, 52]
        assert b"".join(d for _, d in items) == data
        long = await app.write(UART, NUS_RX, bytes(1000), "true")
        assert long.chunks == 2  # 512 + 488, each a long write
        assert sub.active


async def test_chunking_mtu_mode_for_writes_with_response(tmp_path):
    app = make_app(tmp_path, 'plugins = ["chunking"]\n[chunking]\nwith_response = "mtu"\n')
    async with app:
        await scanned(app)
        await app.connect(UART)
        assert (await app.write(UART, NUS_RX, bytes(500), "true")).chunks == 3


def test_adaptive_duration_follows_the_device_count():
    s = AdaptiveScanSettings()
    assert adaptive_duration(s, 0) == 2.0  # clamped to min_s
    assert adaptive_duration(s, 5) == 5.0
    assert adaptive_duration(s, 10) == 10.0
    assert adaptive_duration(s, 500) == 20.0  # factor capped at 2
    with pytest.raises(ValueError, match="min_s"):
        AdaptiveScanSettings(min_s=5, max_s=1)


async def test_adaptive_scan_plans_and_stops_early(tmp_path):
    # the virtual clock: the first scan must hear all seven devices within its 3 s
    app = make_app(
        tmp_path,
        'plugins = ["adaptive_scan"]\n[adaptive_scan]\nmin_s = 3\nquiet_s = 1.5\n',
        time_scale=0,
    )
    async with app:
        first = await app.scan(None, ScanFilter())
        assert first.plan.notes[0] == "adaptive_scan: 3 s for 0 devices heard recently"
        assert first.matched == 7
        second = await app.scan(None, ScanFilter())
        assert second.plan.duration_s == 7.0  # 10 s × 7/10 devices
        assert second.plan.notes[-1] == "stopped early: no new device for 1.5 s"
        asked = await app.scan(0.5, ScanFilter())
        assert asked.plan.duration_s == 0.5 and asked.plan.notes == []


async def test_listeners_bound_subscriptions_with_a_clear_error(tmp_path):
    app = make_app(tmp_path, 'plugins = ["listeners"]\n[listeners]\nmax_per_connection = 1\n')
    async with Client(build_server(app)) as client:
        await client.call_tool("ble_scan", {"duration_s": 2})
        await client.call_tool("ble_connect", {"address": HRM})
        ok = await client.call_tool("ble_subscribe", {"address": HRM, "characteristic": "2a37"})
        assert not ok.is_error
        refused = await client.call_tool(
            "ble_subscribe", {"address": HRM, "characteristic": "2a19"}
        )
        assert refused.is_error
        assert "listeners.max_per_connection" in refused.content[0].text
        assert "Call ble_unsubscribe on one you no longer need" in refused.content[0].text
        assert len([s for s in app.subscriptions.values() if s.active]) == 1


async def test_listeners_unsubscribe_abandoned_buffers(tmp_path):
    app = make_app(tmp_path, 'plugins = ["listeners"]\n[listeners]\nabandon_after_s = 0.05\n')
    async with app:
        await scanned(app)
        await app.connect(UART)
        sub, _ = await app.subscribe(UART, NUS_TX)
        for _ in range(100):
            if not sub.active:
                break
            await asyncio.sleep(0.02)
        assert sub.ended == "unsubscribed"


async def test_listeners_refusal_type(tmp_path):
    app = make_app(tmp_path, 'plugins = ["listeners"]\n[listeners]\nmax_total = 1\n')
    async with app:
        await scanned(app)
        await app.connect(UART)
        await app.connect(HRM)
        await app.subscribe(UART, NUS_TX)
        with pytest.raises(NotPermitted, match=r"listeners\.max_total"):
            await app.subscribe(HRM, "2a37")


async def test_cleanup_sweep_forgets_stale_devices_and_buffers(tmp_path):
    app = make_app(tmp_path, "plugins = []")
    async with app:
        await scanned(app)
        await app.connect(UART)
        await app.subscribe(UART, NUS_TX)
        await app.disconnect(UART)
        settings = CleanupSettings(forget_devices_after_s=1000, ended_subscription_ttl_s=1000)

        assert sweep(app.api, settings) == (0, 0)
        settings = CleanupSettings(forget_devices_after_s=0.0001, ended_subscription_ttl_s=0.0001)
        await asyncio.sleep(0.01)
        assert sweep(app.api, settings) == (7, 1)
        assert len(app.tracker) == 0 and app.subscriptions == {}


async def test_concurrent_scans_share_one_radio_scan(tmp_path):
    # the virtual clock: at time_scale 0.01 a 1-2 s scan is 10-20 ms of wall time, which a
    # busy machine can miss or stretch
    app = make_app(tmp_path, "plugins = []\n[server]\nmax_concurrent_scans = 3\n", time_scale=0)
    async with app:
        results = await asyncio.gather(
            app.scan(2.0, ScanFilter()),
            app.scan(2.0, ScanFilter(name="HRM")),
            app.scan(1.5, ScanFilter(service_uuid="0000181a-0000-1000-8000-00805f9b34fb")),
        )
        assert [r.matched for r in results] == [7, 1, 1]
        assert [d.name for d in results[1].devices] == ["HRM Strap"]
        assert app.scans_run == 3
        assert app.scanner.radio_scans < 3
        assert all(r.duration_s < 2.5 for r in results)  # simulated seconds, not summed


async def test_a_later_longer_request_extends_the_radio_scan(tmp_path):
    # the virtual clock: at time_scale 0.01 a loaded machine stretched the 0.5 s scan past 1 s
    app = make_app(tmp_path, "plugins = []", time_scale=0)
    async with app:
        short = asyncio.ensure_future(app.scan(0.5, ScanFilter()))
        await asyncio.sleep(0)  # the short scan starts first
        long = await app.scan(3.0, ScanFilter())
        assert (await short).duration_s < 1.0
        assert long.duration_s >= 3.0 and long.matched == 7
        assert app.scanner.radio_scans == 1  # the long request joined the short one's scan


async def test_requests_beyond_the_limit_wait_for_a_place(tmp_path):
    # the virtual clock: at time_scale 0.01 a 1-2 s scan is 10-20 ms of wall time, which a
    # busy machine can miss or stretch
    app = make_app(tmp_path, "plugins = []\n[server]\nmax_concurrent_scans = 1\n", time_scale=0)
    async with app:
        first, second = await asyncio.gather(
            app.scan(1.0, ScanFilter()), app.scan(1.0, ScanFilter())
        )
        assert app.scanner.radio_scans == 2
        assert first.matched >= 1 and second.matched >= 1


SLOW_WORLD = """
name = "slow"
seed = 3
[[devices]]
address = "AA:00:00:00:00:01"
name = "Slow"
adv_interval_ms = 20
[devices.faults]
slow_response_ms = 3000
[[devices.services]]
uuid = "180f"
[[devices.services.characteristics]]
uuid = "2a19"
properties = ["read"]
value = "11"
[[devices]]
address = "AA:00:00:00:00:02"
name = "Fast"
adv_interval_ms = 20
[[devices.services]]
uuid = "180f"
[[devices.services.characteristics]]
uuid = "2a19"
properties = ["read"]
value = "22"
[[devices]]
address = "AA:00:00:00:00:03"
name = "Third"
adv_interval_ms = 20
"""


async def test_pool_never_releases_a_link_with_an_operation_under_way(tmp_path):
    world = tmp_path / "slow.toml"
    world.write_text(SLOW_WORLD)
    app = make_app(tmp_path, 'plugins = ["pool"]\n[pool]\nmax_connections = 2\n', world=world)
    slow, fast, third = "AA:00:00:00:00:01", "AA:00:00:00:00:02", "AA:00:00:00:00:03"
    async with app:
        await app.scan(1.0, ScanFilter())
        await app.connect(slow)
        await app.connect(fast)
        await app.read(fast, "2a19")
        reading = asyncio.ensure_future(app.read(slow, "2a19"))
        for _ in range(1000):  # let the read reach the radio
            if slow in app.in_flight:
                break
            await asyncio.sleep(0)
        await app.read(fast, "2a19")  # the slow link is now the least recently used
        conn, _ = await app.connect(third)
        assert conn.notes == [
            f"pool: released {fast} (least recently used) to stay within max_connections=2"
        ]
        assert (await reading).data == b"\x11"
        assert set(app.connections) == {slow, third}
        assert app.in_flight == {}


async def test_profiler_writes_one_json_line_per_operation(tmp_path):
    import json

    profile = tmp_path / "profile.jsonl"
    app = make_app(tmp_path, f'plugins = ["profiler"]\n[profiler]\npath = "{profile}"\n')
    async with app:
        await app.scan(2.0, ScanFilter())
        await app.connect(HRM)
        await app.read(HRM, "2a19")
        with pytest.raises(NotPermitted):
            await app.read(HRM, "2a37")  # refused before any I/O: not an operation
    lines = [json.loads(line) for line in profile.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["scan", "connect", "discover", "read"]
    read = lines[-1]
    assert read["address"] == HRM and read["bytes"] == 1 and read["outcome"] == "ok"
    assert read["attempts"] == 1 and read["duration_s"] >= 0 and read["timestamp"]
    assert lines[0]["devices"] == 7


async def test_profiler_threshold(tmp_path):
    profile = tmp_path / "slow.jsonl"
    app = make_app(
        tmp_path, f'plugins = ["profiler"]\n[profiler]\npath = "{profile}"\nmin_duration_s = 60\n'
    )
    async with app:
        await app.scan(2.0, ScanFilter())
        await app.connect(HRM)
    assert profile.read_text() == ""


async def test_a_cancelled_scan_stops_the_radio(tmp_path):
    app = make_app(tmp_path, "plugins = []")
    async with app:
        scan = asyncio.ensure_future(app.scan(300.0, ScanFilter()))
        for _ in range(1000):
            if app.scanner.radio_scans:
                break
            await asyncio.sleep(0)
        scan.cancel()
        with pytest.raises(asyncio.CancelledError):
            await scan
        for _ in range(1000):
            if not app.scanner.scanning:
                break
            await asyncio.sleep(0.001)
        assert not app.scanner.scanning  # not listening for the remaining 300 s
        # and the next scan works: it ends at the first device heard (a long window, as the
        # 100x scaled clock leaves a 1 s scan 10 ms of wall time on a busy machine)
        assert (await app.scan(100.0, ScanFilter(), limit=1)).matched >= 1
