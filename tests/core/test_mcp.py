"""The MCP surface through the SDK's own client, in both protocol eras.

Every tool end to end on the demo world, the output schemas and annotations, and every bad input
as a clear tool error after which the server still serves with its state intact.
"""

from __future__ import annotations

import pytest
from mcp.client import Client

from mcp_ble.core.server import build_server

from tests.helpers import error, failure, make_app, ok

HRM = "C4:7C:8D:6A:12:01"
THERMO = "E8:31:CD:44:09:7A"
UART = "F1:22:9B:03:5E:C0"
EARBUDS = "38:18:4C:B2:77:10"
LAMP = "A4:C1:38:0D:52:E3"
BEACON = "D0:39:72:A1:B4:2F"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"

TOOLS = {
    "ble_scan",
    "ble_devices",
    "ble_sensors",
    "ble_connect",
    "ble_pair",
    "ble_disconnect",
    "ble_connections",
    "ble_services",
    "ble_read",
    "ble_write",
    "ble_read_descriptor",
    "ble_write_descriptor",
    "ble_subscribe",
    "ble_unsubscribe",
    "ble_notifications",
    "ble_status",
}


@pytest.fixture(params=["auto", "legacy"])
async def client(request, tmp_path):
    # The virtual clock: a scan lasts its simulated length however loaded the machine (on a
    # 100x scaled clock a 2 s scan is 20 ms of wall time, which a busy loop could miss), and
    # between calls simulated time follows the wall clock, so notifications keep coming.
    app = make_app(
        tmp_path,
        "[server]\nscan_duration_s = 2.0\n",
        time_scale=0,
        environ={"MCP_BLE_BACKENDS__SIMULATED__VIRTUAL_IDLE": "wall"},
    )
    async with Client(build_server(app), mode=request.param) as c:
        c.app = app
        yield c


async def test_tools_have_schemas_and_annotations(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.output_schema, tool.name
        assert tool.annotations is not None, tool.name
        assert tool.description
    assert tools["ble_read"].annotations.read_only_hint is True
    assert tools["ble_write"].annotations.destructive_hint is True
    assert tools["ble_write_descriptor"].annotations.destructive_hint is True
    assert not tools["ble_connect"].annotations.read_only_hint  # absent: the spec's false
    assert tools["ble_connect"].annotations.destructive_hint is False


async def test_scan_decodes_and_filters(client):
    scan = await ok(client, "ble_scan", duration_s=2.0)
    assert scan["simulated"] is True
    rssis = [d["rssi"] for d in scan["devices"]]
    assert rssis == sorted(rssis, reverse=True)
    by_address = {d["address"]: d for d in scan["devices"]}
    hrm = by_address[HRM]
    assert hrm["services"][0] == "180d Heart Rate"
    assert hrm["manufacturer_data"] == {"135 Garmin International, Inc.": "0102"}
    assert by_address[BEACON]["connectable"] is False
    assert "connectable" not in hrm  # only a device that refuses connections says so
    assert all(v not in (None, [], {}, "") for d in scan["devices"] for v in d.values())
    only = await ok(client, "ble_scan", duration_s=2.0, service_uuid="181a")
    assert [d["address"] for d in only["devices"]] == [THERMO]
    named = await ok(client, "ble_scan", duration_s=2.0, name="uart")
    assert [d["name"] for d in named["devices"]] == ["UART Bridge"]
    strong = await ok(client, "ble_scan", duration_s=2.0, min_rssi=-65)
    assert all(d["rssi"] >= -65 for d in strong["devices"])
    assert HRM in {d["address"] for d in strong["devices"]}
    apple = await ok(client, "ble_scan", duration_s=2.0, manufacturer_id=0x004C)
    assert {d["address"] for d in apple["devices"]} == {EARBUDS, BEACON}
    limited = await ok(client, "ble_scan", duration_s=2.0, limit=2)
    # limit ends the scan once that many matching devices were heard
    assert len(limited["devices"]) == 2 and "matched" not in limited
    assert limited["duration_s"] < 2.0
    assert "matched" not in scan  # said only when more matched than are listed
    recent = await ok(client, "ble_devices")
    assert len(recent["devices"]) == 7
    assert all(d["seen_s_ago"] >= 0 for d in recent["devices"])


async def test_connect_read_services_and_decoders(client):
    await ok(client, "ble_scan")
    conn = await ok(client, "ble_connect", address=HRM.lower())
    assert conn == {"mtu": 185, "mtu_by": "asked"}  # the strap offers 185: less than 247
    again = await ok(client, "ble_connect", address=HRM)
    assert again["already_connected"] is True
    tree = await ok(client, "ble_services", address=HRM)
    names = [s["name"] for s in tree["services"]]
    assert names == ["Heart Rate", "Battery", "Device Information"]  # the SIG's current names
    hrm_char = tree["services"][0]["characteristics"][0]
    assert hrm_char == {
        "uuid": "2a37",
        "name": "Heart Rate Measurement",
        "handle": 3,
        "properties": ["notify"],
        "descriptors": ["2902"],
    }
    battery_char = tree["services"][1]["characteristics"][0]
    battery = await ok(client, "ble_read", address=HRM, characteristic="2a19")
    # the value and its decoding, nothing the arguments said; 0x57 is 87 %, not the text "W"
    assert battery == {"hex": "57", "battery_level_percent": 87}
    by_handle = await ok(client, "ble_read", address=HRM, characteristic=battery_char["handle"])
    assert by_handle["uuid"] == "2a19"  # named by handle: the result says which it was
    hashed = await ok(client, "ble_read", address=HRM, characteristic=f"#{battery_char['handle']}")
    assert hashed["uuid"] == "2a19" and 5 <= hashed["battery_level_percent"] <= 87
    full = await ok(
        client, "ble_read", address=HRM, characteristic="00002A29-0000-1000-8000-00805F9B34FB"
    )
    assert full == {"text": "Acme Fitness"}  # the text is exactly the bytes: no hex copy
    location = await ok(client, "ble_read", address=HRM, characteristic="2a38")
    assert location == {"hex": "01", "body_sensor_location": "chest"}
    await ok(client, "ble_connect", address=THERMO)
    temperature = await ok(client, "ble_read", address=THERMO, characteristic="2a6e")
    assert 19 < temperature["temperature_c"] < 24
    conns = await ok(client, "ble_connections")
    assert {c["address"] for c in conns["connections"]} == {HRM, THERMO}
    status = await ok(client, "ble_status")
    assert status["connections"] == 2 and status["simulated"] is True
    assert status["backend"]["name"] == "simulated"
    plugins = {p["name"]: p["hooks"] for p in status["plugins"]}
    assert not any("origin" in p for p in status["plugins"])  # all built in
    assert "retry_delay" in plugins["retry"]  # the hook names without their mcp_ble_ prefix
    assert "register_metrics" in plugins["metrics"]
    assert not any(h.startswith("mcp_ble_") for hooks in plugins.values() for h in hooks)
    assert (await ok(client, "ble_disconnect", address=HRM))["was_connected"] is True
    assert (await ok(client, "ble_disconnect", address=HRM))["was_connected"] is False


async def test_notifications_subscribe_drain_unsubscribe(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=HRM)
    sub = await ok(client, "ble_subscribe", address=HRM, characteristic="2a37")
    assert sub == {"resource": f"ble://notifications/{HRM}/3", "buffer_size": 256}
    assert (await ok(client, "ble_subscribe", address=HRM, characteristic="2a37"))[
        "already_subscribed"
    ]
    got = await ok(client, "ble_notifications", address=HRM, characteristic="2a37", wait_s=5)
    assert got["notifications"], got
    first = got["notifications"][0]
    assert first["ms"] == 0 and got["start"].endswith("+00:00")
    assert 55 <= first["heart_rate_bpm"] <= 160 and first["sensor_contact"] is True
    assert "text" not in first  # a number, not text
    assert "ended" not in got and "dropped" not in got
    cccd = await ok(
        client, "ble_read_descriptor", address=HRM, descriptor="2902", characteristic="2a37"
    )
    assert cccd == {
        "hex": "0100",
        "notifications_enabled": True,
        "indications_enabled": False,
        "handle": 4,
    }
    done = await ok(client, "ble_unsubscribe", address=HRM, characteristic="2a37")
    assert done["received"] >= 1
    text = await error(client, "ble_notifications", address=HRM, characteristic="2a37", wait_s=0)
    assert "ble_subscribe first" in text


async def test_uart_write_and_echo(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=UART)
    await ok(client, "ble_subscribe", address=UART, characteristic=NUS_TX)
    wrote = await ok(
        client, "ble_write", address=UART, characteristic=NUS_RX, value="hi there", encoding="utf8"
    )
    assert wrote == {"bytes": 8, "with_response": True}
    await ok(
        client,
        "ble_write",
        address=UART,
        characteristic=NUS_RX,
        value="AQID",
        encoding="base64",
        response="false",
    )
    await ok(client, "ble_write", address=UART, characteristic=NUS_RX, value="de:ad be-ef")
    got = await ok(client, "ble_notifications", address=UART, characteristic=NUS_TX, wait_s=2)
    assert [n.get("hex") for n in got["notifications"]] == [None, "010203", "deadbeef"]
    assert got["notifications"][0]["text"] == "hi there"  # exactly the bytes: no hex copy


async def test_notification_buffer_is_bounded_and_counts_drops(tmp_path):
    app = make_app(tmp_path, "[server]\nnotification_buffer = 3\n")
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan", duration_s=2.0)
        await ok(c, "ble_connect", address=UART)
        await ok(c, "ble_subscribe", address=UART, characteristic=NUS_TX)
        for i in range(5):
            await ok(c, "ble_write", address=UART, characteristic=NUS_RX, value=f"{i:02x}")
        got = await ok(c, "ble_notifications", address=UART, characteristic=NUS_TX, max_items=2)
        assert [n["hex"] for n in got["notifications"]] == ["02", "03"]
        assert got["remaining"] == 1 and got["dropped"] == 2 and got["received"] == 5


async def test_descriptors(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=THERMO)
    desc = await ok(client, "ble_read_descriptor", address=THERMO, descriptor="2901")
    assert desc["text"] == "Room temperature"
    assert desc["characteristic"] == "2a6e"  # not named by the call: the result says it
    cccd = await ok(
        client, "ble_read_descriptor", address=THERMO, descriptor="2902", characteristic="2a6e"
    )
    assert "characteristic" not in cccd
    wrote = await ok(
        client,
        "ble_write_descriptor",
        address=THERMO,
        descriptor=f"#{cccd['handle']}",
        value="0100",
    )
    assert wrote == {"bytes": 2, "handle": cccd["handle"], "characteristic": "2a6e"}


async def test_peripheral_disconnect_keeps_buffer_readable(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=UART)
    await ok(client, "ble_subscribe", address=UART, characteristic=NUS_TX)
    await ok(client, "ble_write", address=UART, characteristic=NUS_RX, value="ff")
    client.app.backend.drop_link(UART)
    got = await ok(client, "ble_notifications", address=UART, characteristic=NUS_TX)
    assert [n["hex"] for n in got["notifications"]] == ["ff"]
    assert "link lost" in got["ended"]
    assert (await ok(client, "ble_connections"))["connections"] == []
    text = await error(client, "ble_read", address=UART, characteristic=NUS_TX)
    assert "not connected" in text and "ble_connect" in text


# --------------------------------------------------------------------------- bad inputs


BAD_INPUTS = [
    # (tool, args, expected text fragments)
    ("ble_connect", {"address": "AA:BB:CC:DD:EE:FF"}, ["No device with address", "ble_scan lists"]),
    ("ble_connect", {"address": "not-an-address"}, ["is not a Bluetooth address", "e.g."]),
    ("ble_connect", {"address": BEACON}, ["not connectable"]),
    ("ble_connect", {"address": HRM, "timeout_s": -1}, ["timeout_s=-1", "out of range"]),
    ("ble_read", {"address": HRM, "characteristic": "2a19"}, ["is not connected", "ble_connect"]),
    ("ble_read", {"address": UART, "characteristic": "zz19"}, ["'zz19' is not a UUID", "2a19"]),
    (
        "ble_read",
        {"address": UART, "characteristic": "2a19"},
        ["has no characteristic 2a19", "It has: "],
    ),
    (
        "ble_read",
        {"address": UART, "characteristic": "#999"},
        ["no characteristic with value handle 999"],
    ),
    ("ble_read", {"address": UART, "characteristic": NUS_TX}, ["cannot be read", "ble_subscribe"]),
    ("ble_read", {"address": UART, "characteristic": 0}, ["handle 0 is out of range"]),
    (
        "ble_write",
        {"address": UART, "characteristic": NUS_RX, "value": "abc"},
        ["odd number of digits"],
    ),
    (
        "ble_write",
        {"address": UART, "characteristic": NUS_RX, "value": "zz"},
        ["is not hex ('z' is not a hex digit)"],
    ),
    (
        "ble_write",
        {"address": UART, "characteristic": NUS_RX, "value": "!!!", "encoding": "base64"},
        ["not valid base64"],
    ),
    (
        "ble_write",
        {"address": UART, "characteristic": NUS_RX, "value": "00" * 513},
        ["513 bytes", "at most 512", "chunking"],
    ),
    (
        "ble_write",
        {"address": UART, "characteristic": NUS_RX, "value": "00" * 245, "response": "false"},
        ["at most 244 bytes per write", "response=true"],
    ),
    (
        "ble_write",
        {"address": UART, "characteristic": NUS_TX, "value": "00"},
        ["does not accept write", "not writable"],
    ),
    (
        "ble_write",
        {"address": UART, "characteristic": NUS_RX, "value": "00", "encoding": "rot13"},
        ["encoding"],
    ),
    ("ble_subscribe", {"address": UART, "characteristic": NUS_RX}, ["neither notifies"]),
    ("ble_unsubscribe", {"address": UART, "characteristic": NUS_TX}, ["no active subscription"]),
    ("ble_notifications", {"address": UART, "characteristic": NUS_TX}, ["ble_subscribe first"]),
    (
        "ble_notifications",
        {"address": UART, "characteristic": NUS_TX, "max_items": 0},
        ["max_items=0"],
    ),
    ("ble_read_descriptor", {"address": UART, "descriptor": "2901"}, ["no descriptor 2901"]),
    ("ble_scan", {"duration_s": 0}, ["duration_s=0", "at most 300 seconds"]),
    ("ble_scan", {"service_uuid": "heart"}, ["'heart' is not a UUID"]),
    ("ble_scan", {"manufacturer_id": 70000}, ["manufacturer_id=70000"]),
]


@pytest.mark.parametrize(
    ("tool", "args", "fragments"),
    BAD_INPUTS,
    ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD_INPUTS)],
)
async def test_bad_input_gives_clear_error_and_server_keeps_state(client, tool, args, fragments):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=UART)
    text = await error(client, tool, **args)
    for fragment in fragments:
        assert fragment.lower() in text.lower(), text
    assert "Traceback" not in text
    # still serving, state intact
    conns = await ok(client, "ble_connections")
    assert [c["address"] for c in conns["connections"]] == [UART]
    assert len((await ok(client, "ble_devices"))["devices"]) == 7


async def test_ambiguous_characteristic_lists_candidates(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=EARBUDS)
    text = await error(client, "ble_read", address=EARBUDS, characteristic="2a19")
    assert "has 2 characteristics 2a19 (Battery Level)" in text
    assert "handle 3" in text and "handle 7" in text
    assert "characteristic='#3'" in text
    # what tells them apart: where each one's User Description is, and once read, its text
    assert "User Description in descriptor #4" in text and "#8" in text, text
    left = await ok(client, "ble_read_descriptor", address=EARBUDS, descriptor="#4")
    assert left["text"] == "Left"
    text = await error(client, "ble_write", address=EARBUDS, characteristic="2a19", value="01")
    assert "handle 3 in service 180f (Battery) 'Left'" in text, text
    assert "handle 7 in service 180f (Battery), User Description in descriptor #8" in text
    right = await ok(client, "ble_read", address=EARBUDS, characteristic="#7")
    assert right == {"hex": "4b", "battery_level_percent": 75, "uuid": "2a19"}
    text = await error(client, "ble_read_descriptor", address=EARBUDS, descriptor="2901")
    assert "has 2 descriptors 2901" in text and "characteristic=" in text


async def test_gatt_refusal_is_reported(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=LAMP)
    text = await error(client, "ble_write", address=LAMP, characteristic="fff1", value="0101")
    assert "Invalid Attribute Value Length" in text and "0x0D" in text
    await ok(client, "ble_write", address=LAMP, characteristic="fff1", value="01")
    assert (await ok(client, "ble_read", address=LAMP, characteristic="fff1"))["hex"] == "01"


async def test_connect_timeout(tmp_path):
    app = make_app(tmp_path, time_scale=1.0)
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan", duration_s=1.1)
        text = await error(c, "ble_connect", address="A4:C1:38:0D:52:E3", timeout_s=0.001)
        assert "timed out" in text and "timeout_s" in text
        assert (await ok(c, "ble_connections"))["connections"] == []


async def test_metrics_resource_is_valid_prometheus_text(client):
    from prometheus_client.parser import text_string_to_metric_families

    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=HRM)
    await ok(client, "ble_read", address=HRM, characteristic="2a19")
    resource = await client.read_resource("ble://metrics")
    families = {f.name: f for f in text_string_to_metric_families(resource.contents[0].text)}
    for name in (
        "ble_discovery_time_seconds",
        "ble_devices_found",
        "ble_connection_time_seconds",
        "ble_connection_success",
        "ble_connection_failure",
        "ble_transfer_rate_bytes_per_second",
        "ble_transfer_latency_seconds",
        "ble_memory_usage_bytes",
        "ble_cpu_usage_percent",
        "ble_event_loop_lag_seconds",
    ):
        assert name in families, name
    buckets = [
        s.labels["le"]
        for s in families["ble_discovery_time_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert buckets == ["0.1", "0.5", "1.0", "2.0", "5.0", "+Inf"]
    latency = [
        s.labels["le"]
        for s in families["ble_transfer_latency_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert latency == ["0.001", "0.005", "0.01", "0.05", "0.1", "+Inf"]
    success = families["ble_connection_success"].samples[0].value
    assert success == 1


GUARDED_WORLD = """
name = "guarded"
[[devices]]
address = "C0:FF:EE:00:00:09"
name = "Guarded"
adv_interval_ms = 20
[[devices.faults.gatt_errors]]
uuid = "fff2"
op = "read"
error = "insufficient_authentication"
[[devices.services]]
uuid = "180f"
[[devices.services.characteristics]]
uuid = "2a19"
properties = ["read", "notify"]
value = "55"
[[devices.services]]
uuid = "fff0"
[[devices.services.characteristics]]
uuid = "fff1"
properties = ["notify"]
[[devices.services.characteristics]]
uuid = "fff2"
properties = ["read"]
text = "secret"
"""


async def test_services_with_values_in_one_call(tmp_path):
    world = tmp_path / "guarded.toml"
    world.write_text(GUARDED_WORLD)
    address = "C0:FF:EE:00:00:09"
    async with Client(build_server(make_app(tmp_path, world=world))) as c:
        await ok(c, "ble_scan", duration_s=1.0)
        await ok(c, "ble_connect", address=address)
        tree = await ok(c, "ble_services", address=address, read_values=True)
        chars = {ch["uuid"]: ch for s in tree["services"] for ch in s["characteristics"]}
        assert chars["2a19"]["value"] == {"hex": "55", "battery_level_percent": 85}
        assert "value" not in chars["fff1"] and "error" not in chars["fff1"]  # notify only
        assert "value" not in chars["fff2"]
        assert "Insufficient Authentication" in chars["fff2"]["error"]
        plain = await ok(c, "ble_services", address=address)
        assert all(
            "value" not in ch and "error" not in ch
            for s in plain["services"]
            for ch in s["characteristics"]
        )


async def test_scan_reports_progress_on_the_backend_clock(tmp_path):
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        updates.append((progress, total, message))

    app = make_app(tmp_path, time_scale=0.01)  # 150 simulated seconds take 1.5 s
    async with Client(build_server(app)) as c:
        result = await c.call_tool("ble_scan", {"duration_s": 150}, progress_callback=on_progress)
        assert not result.is_error
    assert updates, "a scan longer than a second reports progress"
    progress, total, message = updates[0]
    assert total == 150 and 50 <= progress <= 150  # simulated seconds, not wall-clock ones
    assert message.startswith("scanning: ") and "devices known" in message


async def test_text_content_is_the_structured_result_as_compact_json(client):
    import json

    result = await client.call_tool("ble_scan", {"duration_s": 2.0})
    text = result.content[0].text
    assert json.loads(text) == result.structured_content
    assert "\n" not in text and ", " not in text.split('"name"')[0]  # no indentation


async def test_errors_carry_a_stable_code_and_kind(client):
    await ok(client, "ble_scan")
    cases = [
        ("ble_connect", {"address": "nope"}, "invalid_input", "fatal", False),
        ("ble_connect", {"address": "AA:BB:CC:DD:EE:FF"}, "device_not_found", "backoff", True),
        ("ble_read", {"address": HRM, "characteristic": "2a19"}, "not_connected", "fatal", False),
    ]
    for tool, args, code, kind, retryable in cases:
        text, info = await failure(client, tool, **args)
        assert (info["code"], info["kind"], info["retryable"]) == (code, kind, retryable)
        assert text.startswith(f"{code}: ") and text.endswith(f". {info['hint']}")
    await ok(client, "ble_connect", address=LAMP)
    text, info = await failure(
        client, "ble_write", address=LAMP, characteristic="fff1", value="0101"
    )
    assert info["code"] == "gatt_error" and info["att_code"] == 0x0D
    assert "0x0D" in text


SCHEMA_INVALID = [
    # (tool, args, fragments of the text): what the SDK's own argument validation refuses
    ("ble_connect", {}, ["address is required", "expected a string"]),
    ("ble_connect", {"address": 12}, ["address=12 is not valid", "expected a string"]),
    (
        "ble_write",
        {"address": LAMP, "characteristic": "fff1", "value": "01", "encoding": "rot13"},
        ['encoding="rot13" is not valid', 'expected one of "hex", "utf8", "base64"'],
    ),
    (
        "ble_write",
        {"address": LAMP, "characteristic": "fff1", "value": "01", "response": "maybe"},
        ['response="maybe" is not valid', 'expected true, false or "auto"'],
    ),
    ("ble_scan", {"limit": 0}, ["limit=0 is not valid", "from 1 to 1000"]),
    ("ble_scan", {"min_rssi": "strong"}, ['min_rssi="strong" is not valid', "an integer"]),
    (
        "ble_read",
        {"address": LAMP, "characteristic": [1]},
        ["characteristic=[1] is not valid", "a string or an integer"],
    ),
]


@pytest.mark.parametrize(
    ("tool", "args", "fragments"),
    SCHEMA_INVALID,
    ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(SCHEMA_INVALID)],
)
async def test_schema_invalid_arguments_are_invalid_input(client, tool, args, fragments):
    text, info = await failure(client, tool, **args)
    assert info["code"] == "invalid_input" and info["retryable"] is False, info
    assert text.startswith("invalid_input: "), text
    for fragment in fragments:
        assert fragment in text, text
    assert info["arguments"] == sorted({f.split("=")[0].split(" ")[0] for f in fragments[:1]})


async def test_response_takes_booleans_and_auto(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=UART)
    for response, with_response in ((True, True), (False, False), ("auto", True)):
        wrote = await ok(
            client, "ble_write", address=UART, characteristic=NUS_RX, value="01", response=response
        )
        assert wrote["with_response"] is with_response, (response, wrote)
