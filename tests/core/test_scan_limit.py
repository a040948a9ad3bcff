"""ble_scan's ``limit`` ends the scan as soon as that many matching devices have been heard.
Durations are on the simulated backend's virtual clock (the demo world's heart-rate strap
advertises every 100 ms), so nothing here depends on machine speed."""

from __future__ import annotations

from mcp.client import Client

from mcp_ble.backends.simulated import theory
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.server import build_server

from tests.helpers import make_app, ok

HRM = "C4:7C:8D:6A:12:01"


async def test_limit_one_returns_when_the_named_device_is_heard(tmp_path):
    async with make_app(tmp_path, "plugins = []", time_scale=0) as app:
        times = []
        for _ in range(20):
            outcome = await app.scan(30.0, ScanFilter(name="HRM"), limit=1)
            assert [d.address for d in outcome.devices] == [HRM]
            assert "stopped after 1 matching device" in outcome.plan.notes
            times.append(outcome.duration_s)
        link = app.radio.world.link
        hrm = app.radio.devices[HRM]
        q = theory.hear_probability(
            hrm.spec.rssi, hrm.spec.rssi_noise_db, link.sensitivity_dbm, hrm.params.loss_rate
        )
        ideal = theory.discovery_time(
            hrm.adv_interval, link.scan_interval_ms / 1000, link.scan_window_ms / 1000, q
        )
    # Each scan ended within a few advertising intervals of 30 s asked for, and on average
    # near the ideal (one advertising interval plus the scan-window alignment).
    assert max(times) < 3.0
    assert sum(times) / len(times) < 2 * ideal, (times, ideal)


async def test_limit_counts_only_matching_devices(tmp_path):
    async with make_app(tmp_path, "plugins = []", time_scale=0) as app:
        # Two devices in the demo world advertise the Battery Service: the scan stops at two.
        outcome = await app.scan(30.0, ScanFilter(service_uuid=parse("180f")), limit=2)
        assert outcome.matched == 2 and len(outcome.devices) == 2
        assert outcome.duration_s < 5.0
        # Fewer matching devices than the limit: the scan runs its whole duration.
        outcome = await app.scan(2.0, ScanFilter(name="HRM"), limit=5)
        assert [d.address for d in outcome.devices] == [HRM]
        assert outcome.duration_s >= 2.0
        assert not any("stopped after" in n for n in outcome.plan.notes)


async def test_without_limit_the_scan_runs_its_duration(tmp_path):
    async with make_app(tmp_path, "plugins = []", time_scale=0) as app:
        outcome = await app.scan(1.5, ScanFilter(name="HRM"))
        assert outcome.duration_s >= 1.5 and [d.address for d in outcome.devices] == [HRM]


async def test_ble_scan_tool_stops_at_limit(tmp_path):
    async with make_app(tmp_path, "plugins = []", time_scale=0) as app:
        async with Client(build_server(app)) as client:
            result = await ok(client, "ble_scan", name="HRM", duration_s=60, limit=1)
    assert [d["address"] for d in result["devices"]] == [HRM]
    assert result["duration_s"] < 3.0


def parse(uuid: str) -> str:
    from mcp_ble.core.values import parse_uuid

    return parse_uuid(uuid)
