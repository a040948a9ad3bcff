"""Every injected fault, seen through the MCP tools: a clear error, and the server still serves.

The world ``tests/worlds/faults.toml`` has one device per fault (at rate 1). The server runs on the
virtual clock with no retry plugin, so each fault surfaces as the error class a real stack raises;
one test turns the retry plugin on and watches it absorb a flaky device.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.client import Client

from mcp_ble.core.server import build_server

from tests.helpers import error, make_app, ok

FAULTS = Path(__file__).resolve().parents[1] / "worlds" / "faults.toml"
ABORT, BUSY, FULL, GHOST, MUTE = (f"F0:00:00:00:00:0{i}" for i in range(1, 6))
LOCK, DROPPER, TIMER, LEAVER = (f"F0:00:00:00:00:0{i}" for i in range(6, 10))
STORM, STUCK, JAMMER, JOSTLE, STALL, FLAKY = (f"F0:00:00:00:00:0{c}" for c in "ABCDEF")
SLUGGISH = "F0:00:00:00:00:10"


async def still_serving(client, connected: set[str]) -> None:
    status = await ok(client, "ble_status")
    assert status["simulated"] is True
    links = await ok(client, "ble_connections")
    assert {c["address"] for c in links["connections"]} == connected
    assert len((await ok(client, "ble_devices"))["devices"]) == 16


def app_for(tmp_path, plugins: str = "[]", extra: str = ""):
    toml = f"plugins = {plugins}\n[server]\nscan_duration_s = 1.0\n{extra}"
    return make_app(tmp_path, toml, world=FAULTS, time_scale=0)


@pytest.fixture
async def client(tmp_path):
    async with Client(build_server(app_for(tmp_path))) as c:
        await ok(c, "ble_scan")
        yield c


@pytest.mark.parametrize(
    ("address", "fragments"),
    [
        (ABORT, ["aborted by interference", "le-connection-abort-by-local", "retry"]),
        (BUSY, ["another operation is in progress", "InProgress"]),
        (FULL, ["no free connection slot", "isconnect a device"]),
        (GHOST, ["does not know the device", "ble_scan"]),
        (MUTE, ["timed out after 20.0 s", "timeout_s"]),
    ],
    ids=["aborted", "in_progress", "out_of_slots", "not_found", "timeout"],
)
async def test_connect_faults(client, address, fragments):
    text = await error(client, "ble_connect", address=address)
    for fragment in fragments:
        assert fragment in text, text
    await still_serving(client, set())
    await ok(client, "ble_connect", address=LOCK)  # other devices still connect
    await still_serving(client, {LOCK})


@pytest.mark.parametrize(
    ("address", "tool", "args", "fragments"),
    [
        (LOCK, "ble_read", {"characteristic": "fff1"}, ["Insufficient Authentication", "0x05"]),
        (LOCK, "ble_write", {"characteristic": "fff2", "value": "01"}, ["Write Not Permitted"]),
        (LOCK, "ble_write", {"characteristic": "fff3", "value": "01"}, ["Invalid Attribute Value"]),
        # These fail every GATT operation, service discovery (the first one) included.
        (JAMMER, "ble_services", {}, ["discovery", "aborted by interference"]),
        (JOSTLE, "ble_services", {}, ["discovery", "another operation is in progress"]),
        (STALL, "ble_services", {}, ["timed out", "ATT transaction timeout"]),
        (STUCK, "ble_services", {}, ["timed out", "30 s, simulated"]),
    ],
    ids=[
        "auth",
        "write-not-permitted",
        "invalid-length",
        "aborted",
        "in-progress",
        "timeout",
        "slow",
    ],
)
async def test_gatt_faults(client, address, tool, args, fragments):
    await ok(client, "ble_connect", address=address)
    if tool != "ble_services":
        await ok(client, "ble_services", address=address)
    text = await error(client, tool, address=address, **args)
    for fragment in fragments:
        assert fragment in text, text
    if address in (STALL, STUCK):
        # An unanswered ATT request closes the link (Core spec Vol 3, Part F, 3.3.3)
        assert "the link was closed" in text and "ble_connect" in text, text
        await still_serving(client, set())
        await ok(client, "ble_connect", address=address)  # a fresh link
    await still_serving(client, {address})
    if address == LOCK:  # the same device still serves what it allows
        value = await ok(client, "ble_read", address=LOCK, characteristic="fff2")
        assert value["hex"] == "02"


async def test_disconnect_after_n_operations(client):
    await ok(client, "ble_connect", address=DROPPER)
    await ok(client, "ble_services", address=DROPPER)  # operation 1
    await ok(client, "ble_read", address=DROPPER, characteristic="fff2")  # operation 2
    text = await error(client, "ble_read", address=DROPPER, characteristic="fff2")
    assert "lost during the read: remote user terminated connection" in text
    await still_serving(client, set())
    text = await error(client, "ble_read", address=DROPPER, characteristic="fff2")
    assert "not connected" in text and "ble_connect" in text
    await ok(client, "ble_connect", address=DROPPER)  # a new link counts from zero
    await ok(client, "ble_read", address=DROPPER, characteristic="fff2")


async def test_disconnect_at_a_set_time_ends_subscriptions(client):
    await ok(client, "ble_connect", address=TIMER)
    await ok(client, "ble_subscribe", address=TIMER, characteristic="fff1")
    await ok(client, "ble_scan", duration_s=6.0)  # simulated time passes t = 5 s
    got = await ok(client, "ble_notifications", address=TIMER, characteristic="fff1", wait_s=0)
    assert got["ended"] == "link lost: remote user terminated connection"
    await still_serving(client, set())
    text = await error(client, "ble_read", address=TIMER, characteristic="fff2")
    assert "not connected" in text


async def test_out_of_range_drops_the_link_and_stops_advertising(client):
    await ok(client, "ble_connect", address=LEAVER)
    scan = await ok(client, "ble_scan", duration_s=5.0)  # out of range at 3 s, + 1 s supervision
    await still_serving(client, set())
    assert LEAVER not in {d["address"] for d in scan["devices"]}
    text = await error(client, "ble_connect", address=LEAVER, timeout_s=2)
    assert "no connectable advertisement was heard" in text and "timeout_s" in text


async def test_notification_storm_is_bounded_and_counted(client):
    await ok(client, "ble_connect", address=STORM)
    sub = await ok(client, "ble_subscribe", address=STORM, characteristic="fff1")
    await ok(client, "ble_scan", duration_s=2.0)
    got = await ok(client, "ble_notifications", address=STORM, characteristic="fff1", max_items=10)
    assert "ended" not in got  # still active
    assert got["received"] > sub["buffer_size"] and got["dropped"] > 0
    assert len(got["notifications"]) == 10
    assert got["remaining"] == sub["buffer_size"] - 10
    await still_serving(client, {STORM})


async def test_simulated_durations_do_not_trip_real_deadlines(tmp_path):
    # 5 s simulated responses against a 0.5 s (real) operation deadline: the virtual clock spends
    # no real time, so the read succeeds; the simulated time it took is on the backend's clock.
    app = app_for(tmp_path, extra="operation_timeout_s = 0.5\n")
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=SLUGGISH)
        await ok(c, "ble_services", address=SLUGGISH)
        before = app.radio.now()
        value = await ok(c, "ble_read", address=SLUGGISH, characteristic="fff2")
        assert value["hex"] == "02"
        assert app.radio.now() - before > 5.0


async def test_retry_plugin_absorbs_a_flaky_device(tmp_path):
    retry = "[retry]\nmax_attempts = 12\nin_progress_delay_s = 0.001\n"
    app = app_for(tmp_path, '["retry"]', retry)
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=FLAKY)
        await ok(c, "ble_services", address=FLAKY)
        for _ in range(10):
            value = await ok(c, "ble_read", address=FLAKY, characteristic="fff2")
            assert value["hex"] == "02"
        assert app.radio.stats.faults["in_progress"] >= 5
