"""State per MCP session, over HTTP with two real clients: neither can drain, unsubscribe or
disconnect the other's state, and one client's transport dropping frees only what it held."""

from __future__ import annotations

import asyncio
import time

from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.helpers import error, make_app, ok
from tests.http_server import clean_env, serving

HRM = "C4:7C:8D:6A:12:01"
THERMO = "E8:31:CD:44:09:7A"


def link(connections: dict, address: str) -> dict:
    return next(c for c in connections["connections"] if c["address"] == address)


async def until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_two_http_clients_keep_their_own_state(tmp_path):
    settings = "[server]\nhttp_session_idle_s = 1.0\n"
    async with serving(tmp_path, "127.0.0.1", clean_env(), settings) as (url, _):
        async with Client(url, mode="legacy") as a, Client(url, mode="legacy") as b:
            await ok(a, "ble_scan", duration_s=2.0)
            await ok(a, "ble_connect", address=HRM)
            sub = await ok(a, "ble_subscribe", address=HRM, characteristic="2a37")
            await ok(b, "ble_connect", address=HRM)  # the link is shared

            # B cannot drain, unsubscribe or read A's buffer, and sees it only as a count.
            text = await error(b, "ble_notifications", address=HRM, characteristic="2a37")
            assert text.startswith("not_subscribed")
            text = await error(b, "ble_unsubscribe", address=HRM, characteristic="2a37")
            assert text.startswith("not_subscribed")
            seen = link(await ok(b, "ble_connections"), HRM)
            assert "subscriptions" not in seen and seen["other_sessions_subscriptions"] == 1
            try:
                await b.read_resource(sub["resource"])
                raise AssertionError("B read A's buffer")
            except MCPError as exc:
                assert "call ble_subscribe first" in str(exc)

            # B's disconnect leaves the link up for A.
            left = await ok(b, "ble_disconnect", address=HRM)
            assert left == {"was_connected": True, "other_sessions": 1}
            got = await ok(a, "ble_notifications", address=HRM, characteristic="2a37", wait_s=3)
            assert got["notifications"] and "ended" not in got
            mine = link(await ok(a, "ble_connections"), HRM)
            assert len(mine["subscriptions"]) == 1 and "other_sessions_subscriptions" not in mine

            # Both subscribed: one radio subscription, a buffer each; A leaving keeps B's.
            await ok(b, "ble_connect", address=HRM)
            again = await ok(b, "ble_subscribe", address=HRM, characteristic="2a37")
            assert "already_subscribed" not in again
            await ok(a, "ble_unsubscribe", address=HRM, characteristic="2a37")
            got = await ok(b, "ble_notifications", address=HRM, characteristic="2a37", wait_s=3)
            assert got["notifications"] and "ended" not in got
            await ok(b, "ble_unsubscribe", address=HRM, characteristic="2a37")

            # A third client subscribes, then its transport drops (no DELETE): when its
            # session times out, what only it held is released, and nothing of A's.
            await ok(a, "ble_subscribe", address=HRM, characteristic="2a37")
            async with Client(
                streamable_http_client(url, terminate_on_close=False), mode="legacy"
            ) as c:
                await ok(c, "ble_connect", address=THERMO)
                await ok(c, "ble_subscribe", address=THERMO, characteristic="2a6e")
                await ok(c, "ble_subscribe", address=HRM, characteristic="2a37")
            assert (
                link(await ok(a, "ble_connections"), THERMO).get("other_sessions_subscriptions")
                == 1
            )

            async def released() -> bool:
                links = await ok(a, "ble_connections")
                return (
                    link(links, THERMO).get("other_sessions_subscriptions", 0) == 0
                    and link(links, HRM).get("other_sessions_subscriptions", 0) == 0
                )

            await until(released)
            got = await ok(a, "ble_notifications", address=HRM, characteristic="2a37", wait_s=3)
            assert got["notifications"] and "ended" not in got

        # B ended its session normally (DELETE) too: only A's subscription was left, and A's
        # end releases it: a new client sees no subscription on the links.
        async with Client(url, mode="legacy") as d:

            async def all_released() -> bool:
                links = await ok(d, "ble_connections")
                return all(
                    c.get("other_sessions_subscriptions", 0) == 0 for c in links["connections"]
                )

            await until(all_released)


async def test_sessions_in_process_share_links_not_buffers(tmp_path):
    """The same rules with the in-process client (2025-11-25 sessions), plus the 2026-07-28
    protocol, which has no sessions: its requests share one owner."""
    app = make_app(tmp_path, "[server]\nscan_duration_s = 1.0\n")
    from mcp_ble.core.server import build_server

    server = build_server(app, manage_app=False)
    async with app:
        async with Client(server, mode="legacy") as a:
            await ok(a, "ble_scan")
            await ok(a, "ble_connect", address=HRM)
            await ok(a, "ble_subscribe", address=HRM, characteristic="2a37")
            async with Client(server) as modern, Client(server) as modern2:
                text = await error(modern, "ble_unsubscribe", address=HRM, characteristic="2a37")
                assert text.startswith("not_subscribed")
                await ok(modern, "ble_subscribe", address=HRM, characteristic="2a37")
                # no sessions on 2026-07-28: another modern client sees the same buffer
                got = await ok(
                    modern2, "ble_notifications", address=HRM, characteristic="2a37", wait_s=3
                )
                assert "ended" not in got
                await ok(modern2, "ble_unsubscribe", address=HRM, characteristic="2a37")
            got = await ok(a, "ble_notifications", address=HRM, characteristic="2a37", wait_s=3)
            assert got["notifications"] and "ended" not in got
        # the legacy session ended: its subscription is gone, and with it the radio's
        assert app.sessions.owned == {} and app.subscriptions == {}
        assert app.connections  # the link stays for the pool to close when idle
        [hrm] = app.api.links()
        assert hrm.sessions == 0 and hrm.active_subscriptions == 0


def test_pool_releases_links_no_session_uses_first():
    from mcp_ble.core.plugin_api import LinkView
    from mcp_ble.plugins.pool import ConnectionPool, PoolSettings

    pool = ConnectionPool(PoolSettings(max_connections=2))
    used = LinkView("A", 23, idle_s=100.0, busy=False, active_subscriptions=0, sessions=1)
    unused = LinkView("B", 23, idle_s=1.0, busy=False, active_subscriptions=0, sessions=0)
    assert pool.evictions([used, unused]) == ["B"]  # though A is the least recently used
