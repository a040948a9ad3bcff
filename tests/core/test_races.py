"""Concurrent calls on one target: subscribe, unsubscribe and CCCD writes are serialized per
characteristic, and the listener limits hold however many subscribes arrive at once.

Each race runs the calls concurrently through one MCP client session, many times over.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcp.client import Client

from mcp_ble.core.server import build_server

from tests.helpers import error_code, make_app, ok

HRM = "C4:7C:8D:6A:12:01"
THERMO = "E8:31:CD:44:09:7A"
UART = "F1:22:9B:03:5E:C0"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
TRIALS = 20


def count_calls(radio: Any, method: str) -> list[int]:
    """Count the backend calls of ``method`` (each one is a CCCD write on the air)."""
    calls = [0]
    real = getattr(radio, method)

    async def counted(*args: Any) -> Any:
        calls[0] += 1
        return await real(*args)

    setattr(radio, method, counted)
    return calls


async def together(client: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return list(await asyncio.gather(*(client.call_tool(tool, args) for tool, args in calls)))


async def test_two_concurrent_unsubscribes_one_succeeds_one_is_told(tmp_path):
    app = make_app(tmp_path, "[server]\nscan_duration_s = 1.0\n")
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=HRM)
        stops = count_calls(app.radio, "stop_notify")
        args = {"address": HRM, "characteristic": "2a37"}
        for trial in range(TRIALS):
            await ok(c, "ble_subscribe", **args)
            results = await together(c, [("ble_unsubscribe", args)] * 2)
            assert sorted(r.is_error for r in results) == [False, True], trial
            failed = next(r for r in results if r.is_error)
            assert error_code(failed) == "not_subscribed"
            assert stops[0] == trial + 1  # the CCCD was written once per pair
        assert not app.subscriptions and not app.subscribing
        assert len(app._target_locks) == 0


async def test_two_concurrent_subscribes_write_the_cccd_once(tmp_path):
    app = make_app(tmp_path, "[server]\nscan_duration_s = 1.0\n")
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=HRM)
        starts = count_calls(app.radio, "start_notify")
        args = {"address": HRM, "characteristic": "2a37"}
        for trial in range(TRIALS):
            results = await together(c, [("ble_subscribe", args)] * 2)
            assert not any(r.is_error for r in results), trial
            already = sorted(r.structured_content.get("already_subscribed", False) for r in results)
            assert already == [False, True], trial
            assert starts[0] == trial + 1
            await ok(c, "ble_unsubscribe", **args)


async def test_a_cccd_write_waits_for_a_subscribe_on_its_characteristic(tmp_path):
    app = make_app(tmp_path, "[server]\nscan_duration_s = 1.0\n")
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=HRM)
        order: list[str] = []
        for method in ("start_notify", "write_descriptor"):
            real = getattr(app.radio, method)

            async def traced(*args: Any, _real: Any = real, _name: str = method) -> Any:
                order.append(f"{_name} begins")
                await asyncio.sleep(0.01)
                result = await _real(*args)
                order.append(f"{_name} ends")
                return result

            setattr(app.radio, method, traced)
        cccd = {"address": HRM, "descriptor": "2902", "characteristic": "2a37", "value": "0000"}
        results = await together(
            c,
            [
                ("ble_subscribe", {"address": HRM, "characteristic": "2a37"}),
                ("ble_write_descriptor", cccd),
            ],
        )
        assert not any(r.is_error for r in results)
        # Never interleaved, whichever ran first.
        assert [o.split()[1] for o in order] == ["begins", "ends", "begins", "ends"]


async def test_listener_limits_hold_under_concurrency(tmp_path):
    toml = (
        'plugins = ["listeners"]\n[server]\nscan_duration_s = 1.0\n'
        "[listeners]\nmax_per_connection = 1\nmax_total = 1\n"
    )
    app = make_app(tmp_path, toml)
    targets = [(HRM, "2a37"), (HRM, "2a19"), (THERMO, "2a6e"), (UART, NUS_TX)]
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        for address in (HRM, THERMO, UART):
            await ok(c, "ble_connect", address=address)
        for trial in range(TRIALS // 2):
            calls = [("ble_subscribe", {"address": a, "characteristic": ch}) for a, ch in targets]
            results = await together(c, calls)
            won = [i for i, r in enumerate(results) if not r.is_error]
            assert len(won) == 1, trial
            assert all(error_code(r) == "not_permitted" for r in results if r.is_error)
            assert sum(s.active for s in app.subscriptions.values()) == 1
            address, characteristic = targets[won[0]]
            await ok(c, "ble_unsubscribe", address=address, characteristic=characteristic)
        assert not app.subscribing
