"""Notification buffers as MCP resources, with "resource updated" pushed in both protocol eras."""

from __future__ import annotations

import asyncio
import json
import warnings

import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from mcp_ble.core.server import build_server

from tests.helpers import make_app

HRM = "C4:7C:8D:6A:12:01"


async def subscribed(client) -> str:
    await client.call_tool("ble_scan", {"duration_s": 2})
    await client.call_tool("ble_connect", {"address": HRM})
    result = await client.call_tool("ble_subscribe", {"address": HRM, "characteristic": "2a37"})
    uri = result.structured_content["resource"]
    assert uri == f"ble://notifications/{HRM}/3"
    return uri


async def test_listen_stream_receives_resource_updated(tmp_path):
    async with Client(build_server(make_app(tmp_path))) as client:
        uri = await subscribed(client)
        async with client.listen(resource_subscriptions=[uri]) as stream:
            async with asyncio.timeout(10):
                async for event in stream:
                    assert event.uri == uri
                    break
        content = json.loads((await client.read_resource(uri)).contents[0].text)
        assert "ended" not in content and content["received"] >= 1
        assert content["uuid"] == "2a37"
        assert "heart_rate_bpm" in content["latest"][-1]
        # reading the resource drains nothing
        drained = await client.call_tool(
            "ble_notifications", {"address": HRM, "characteristic": "2a37", "max_items": 1000}
        )
        assert len(drained.structured_content["notifications"]) >= content["buffered"]


async def test_legacy_subscribe_receives_updated_notifications(tmp_path):
    updates: list[str] = []

    async def on_message(message):
        params = getattr(getattr(message, "params", None), "uri", None)
        if params is not None:
            updates.append(str(params))

    app = make_app(tmp_path)
    async with Client(build_server(app), mode="legacy", message_handler=on_message) as client:
        uri = await subscribed(client)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(uri)
        for _ in range(200):
            if updates:
                break
            await asyncio.sleep(0.01)
        assert updates and set(updates) == {uri}
        publisher = dict(app.plugins)["mcp-resources"]
        received = app.subscriptions[(HRM, 3)].received
        assert publisher.published <= received  # coalesced, never more than one per value


async def test_unknown_notification_resource_is_a_clear_error(tmp_path):
    async with Client(build_server(make_app(tmp_path))) as client:
        with pytest.raises(MCPError, match="call ble_subscribe first"):
            await client.read_resource(f"ble://notifications/{HRM}/3")
