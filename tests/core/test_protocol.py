"""Protocol-level answers, in both protocol eras: prompts, and the JSON-RPC error codes the MCP
spec gives for an unknown tool, an unknown prompt, a missing prompt argument and a malformed or
unknown resource URI (all -32602, invalid params)."""

from __future__ import annotations

import json

import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from mcp_ble.core.server import build_server

from tests.helpers import make_app, ok

HRM = "C4:7C:8D:6A:12:01"
INVALID_PARAMS = -32602


@pytest.fixture(params=["auto", "legacy"])
async def client(request, tmp_path):
    app = make_app(tmp_path, "[server]\nscan_duration_s = 2.0\n")
    async with Client(build_server(app), mode=request.param) as c:
        yield c


async def protocol_error(call) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await call
    return caught.value


async def test_prompts_are_listed_with_their_argument(client):
    listed = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(listed) == {"explore_device", "diagnose_connection"}
    for prompt in listed.values():
        assert prompt.description
        [argument] = prompt.arguments
        assert argument.name == "address" and argument.required is True


async def test_explore_device_walks_services_and_values(client):
    got = await client.get_prompt("explore_device", {"address": HRM.lower()})
    [message] = got.messages
    text = message.content.text
    assert message.role == "user" and HRM in text  # the address, canonical
    for step in ("ble_connect", "ble_services", "read_values=true", "ble_subscribe", "simulated"):
        assert step in text, step


async def test_diagnose_connection_names_the_checks(client):
    got = await client.get_prompt("diagnose_connection", {"address": HRM})
    text = got.messages[0].content.text
    for check in ("ble_status", "ble_connections", "mcp-ble doctor", "device_not_found"):
        assert check in text, check


async def test_prompt_errors_are_invalid_params(client):
    unknown = await protocol_error(client.get_prompt("make_coffee", {"address": HRM}))
    assert unknown.error.code == INVALID_PARAMS
    assert "Unknown prompt: make_coffee" in unknown.error.message
    assert "explore_device" in unknown.error.message
    missing = await protocol_error(client.get_prompt("explore_device", {}))
    assert missing.error.code == INVALID_PARAMS and "address" in missing.error.message
    bad = await protocol_error(client.get_prompt("diagnose_connection", {"address": "kitchen"}))
    assert bad.error.code == INVALID_PARAMS and "is not a Bluetooth address" in bad.error.message


async def test_unknown_tool_is_invalid_params(client):
    err = await protocol_error(client.call_tool("ble_teleport", {"address": HRM}))
    assert err.error.code == INVALID_PARAMS and "Unknown tool: ble_teleport" in err.error.message
    assert (await ok(client, "ble_status"))["version"]  # still serving


@pytest.mark.parametrize(
    "uri",
    [
        f"ble://notifications/{HRM}/three",
        "ble://notifications/not-an-address/3",
        f"ble://notifications/{HRM}/-",
    ],
)
async def test_malformed_notification_uri_is_invalid_params(client, uri):
    err = await protocol_error(client.read_resource(uri))
    assert err.error.code == INVALID_PARAMS, err.error
    assert "Malformed resource URI" in err.error.message
    assert "ble://notifications/<address>/<handle>" in err.error.message


async def test_unknown_resource_is_invalid_params(client):
    err = await protocol_error(client.read_resource(f"ble://notifications/{HRM}/3"))
    assert err.error.code == INVALID_PARAMS and "ble_subscribe first" in err.error.message
    err = await protocol_error(client.read_resource("ble://nothing/here"))
    assert err.error.code == INVALID_PARAMS


async def test_notification_resource_is_compact_and_lean(client):
    await ok(client, "ble_scan")
    await ok(client, "ble_connect", address=HRM)
    sub = await ok(client, "ble_subscribe", address=HRM, characteristic="2a37")
    await ok(client, "ble_notifications", address=HRM, characteristic="2a37", wait_s=5)
    await ok(client, "ble_notifications", address=HRM, characteristic="2a37", wait_s=5)
    text = (await client.read_resource(sub["resource"])).contents[0].text
    body = json.loads(text)
    assert text == json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert body["uuid"] == "2a37" and HRM not in text  # the URI names the device already
    assert body["received"] >= 2 and "dropped" not in body and "ended" not in body
