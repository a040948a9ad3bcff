"""Client input is bounded before it is used, and bad input is a clear error, never an internal
one.

Memory is measured with tracemalloc (Python allocations only, so the figure does not depend on the
allocator or on what else the machine runs): each case must grow by under 10 MB.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from mcp_ble.core.errors import DeviceNotFound, InvalidInput
from mcp_ble.core.server import build_server
from mcp_ble.core.values import MAX_REF_LEN, parse_address, parse_handle, parse_value

from tests.helpers import error_code, make_app, ok

HRM = "C4:7C:8D:6A:12:01"
MB = 1024 * 1024


def rss() -> int | None:
    """Resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


async def growth(
    work: Callable[[], Awaitable[None]],
    by_rss: bool = False,
    warm_up: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Bytes of memory still held after ``work`` (run once before, to warm caches). Python
    allocations by tracemalloc; with ``by_rss`` (for work too slow to trace), the process's
    resident size where the platform tells it."""
    await (warm_up or work)()
    gc.collect()
    if by_rss and (before := rss()) is not None:
        await work()
        gc.collect()
        return (rss() or 0) - before
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@asynccontextmanager
async def client_on_demo(tmp_path, **kwargs) -> AsyncIterator[Client]:
    app = make_app(tmp_path, "[server]\nscan_duration_s = 1.0\n")
    async with Client(build_server(app), **kwargs) as c:
        c.app = app  # type: ignore[attr-defined]
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=HRM)
        yield c


async def test_padded_addresses_and_names_are_refused_not_kept(tmp_path):
    async with client_on_demo(tmp_path) as c:
        pad = " " * (3 * MB)

        async def sixty_calls() -> None:
            for i in range(20):
                calls = [
                    ("ble_read", {"address": pad + HRM + " " * i, "characteristic": "2a19"}),
                    ("ble_read", {"address": HRM, "characteristic": f"2a19{pad}{' ' * i}"}),
                    ("ble_subscribe", {"address": HRM, "characteristic": f"{' ' * i}{pad}2a37"}),
                ]
                for tool, args in calls:
                    result = await c.call_tool(tool, args)
                    assert error_code(result) == "invalid_input"
                    assert len(result.content[0].text) < 1000  # the text is not echoed whole

        grew = await growth(sixty_calls)
        assert grew < 10 * MB, f"{grew / MB:.1f} MB"
        # The server still serves, and the normal spellings still work.
        assert (await ok(c, "ble_read", address=f" {HRM.lower()} ", characteristic=" 2a19 "))[
            "battery_level_percent"
        ]


async def test_unknown_addresses_leave_no_locks(tmp_path):
    app = make_app(tmp_path, time_scale=0)
    async with app:

        async def many_unknown(count: int = 20_000) -> None:
            for i in range(count):
                with pytest.raises(DeviceNotFound):
                    # A short timeout keeps the scan for each unknown address short.
                    address = f"02:00:00:{i >> 16:02X}:{(i >> 8) & 255:02X}:{i & 255:02X}"
                    await app.connect(address, timeout_s=0.002)

        # 500 connects warm the caches as well as 20,000 (grew 0.22 MB against 0.19 MB)
        grew = await growth(many_unknown, warm_up=lambda: many_unknown(500))
        assert len(app._connect_locks) == 0 and not app.in_flight
        assert grew < 10 * MB, f"{grew / MB:.1f} MB"


async def test_resource_subscriptions_only_for_buffers_that_exist(tmp_path):
    # 500 sessions take minutes of simulated time: nobody drains, yet the buffer must stay
    app = make_app(
        tmp_path, "[server]\nscan_duration_s = 1.0\n[listeners]\nabandon_after_s = 1e6\n"
    )
    server = build_server(app, manage_app=False)
    junk = (
        [f"ble://junk/{i}/{'x' * 2000}" for i in range(10)]
        + [
            f"ble://notifications/{HRM}/{3 + i}"
            for i in range(1, 6)  # well formed, no buffer
        ]
        + [f"ble://notifications/not-an-address/{i}" for i in range(5)]
    )
    async with app:
        async with Client(server) as c:
            await ok(c, "ble_scan")
            await ok(c, "ble_connect", address=HRM)
            uri = (await ok(c, "ble_subscribe", address=HRM, characteristic="2a37"))["resource"]
        publisher = dict(app.plugins)["mcp-resources"]

        async def sessions(count: int = 500) -> None:
            for _ in range(count):
                async with Client(server, mode="legacy") as c:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        for bad in junk:
                            with pytest.raises(MCPError) as refused:
                                await c.subscribe_resource(bad)
                            assert "not a resource" in str(refused.value) or (
                                "call ble_subscribe first" in str(refused.value)
                            )
                        # A resource subscription needs this session's own buffer.
                        await ok(c, "ble_subscribe", address=HRM, characteristic="2a37")
                        await c.subscribe_resource(uri)
                        assert len(publisher.legacy) >= 1

        grew = await growth(sessions, by_rss=True, warm_up=lambda: sessions(20))
        gc.collect()
        assert len(publisher.legacy) == 0  # released with their sessions
        assert len(app.sessions.owned) == 1  # their buffers too; the first client's stays
        assert grew < 10 * MB, f"{grew / MB:.1f} MB"


async def test_legacy_resource_updates_still_reach_a_live_session(tmp_path):
    updates: list[str] = []

    async def on_message(message) -> None:
        uri = getattr(getattr(message, "params", None), "uri", None)
        if uri is not None:
            updates.append(str(uri))

    async with client_on_demo(tmp_path, mode="legacy", message_handler=on_message) as c:
        uri = (await ok(c, "ble_subscribe", address=HRM, characteristic="2a37"))["resource"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await c.subscribe_resource(uri)
        for _ in range(500):
            if updates:
                break
            await asyncio.sleep(0.01)
        assert set(updates) == {uri}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await c.unsubscribe_resource(uri)
        assert len(dict(c.app.plugins)["mcp-resources"].legacy) == 0


BAD_INPUT = [
    # (tool, arguments): each once was an internal error or was accepted unbounded
    ("ble_read", {"address": HRM, "characteristic": "#" + "9" * 5000}),
    ("ble_read", {"address": HRM, "characteristic": "9" * 5000}),
    ("ble_read", {"address": HRM, "characteristic": "#abc"}),
    ("ble_read", {"address": HRM, "characteristic": "#0"}),
    ("ble_read", {"address": HRM, "characteristic": 0}),
    ("ble_read", {"address": HRM, "characteristic": 10**30}),
    ("ble_read", {"address": "\udc80", "characteristic": "2a19"}),
    (
        "ble_write",
        {"address": HRM, "characteristic": "2a19", "value": "a\ud800b", "encoding": "utf8"},
    ),
    (
        "ble_write",
        {"address": HRM, "characteristic": "2a19", "value": "\udc80\udc80", "encoding": "hex"},
    ),
    (
        "ble_write",
        {"address": HRM, "characteristic": "2a19", "value": "=\udc80", "encoding": "base64"},
    ),
    ("ble_write", {"address": HRM, "characteristic": "2a19", "value": "00" * (MB // 2)}),
    ("ble_scan", {"duration_s": 1, "name": "x" * 100_000}),
    ("ble_scan", {"duration_s": 1, "service_uuid": "1" * 100_000}),
    ("ble_read_descriptor", {"address": HRM, "descriptor": "#" + "0" * 1000}),
    ("ble_notifications", {"address": HRM, "characteristic": "\udcff" * 10}),
]


async def test_bad_input_is_a_clear_error_with_a_code(tmp_path):
    async with client_on_demo(tmp_path) as c:
        for tool, args in BAD_INPUT:
            result = await c.call_tool(tool, args)
            assert error_code(result) in {"invalid_input", "value_too_long"}, (tool, args)
            assert len(result.content[0].text) < 1000
        # A handle written with leading zeros is a handle.
        battery = await ok(c, "ble_read", address=HRM, characteristic="#9")  # Battery Level
        padded = f"#{9:04d}"
        again = await ok(c, "ble_read", address=HRM, characteristic=padded)
        assert again["uuid"] == battery["uuid"] == "2a19"
        assert (await ok(c, "ble_status"))["connections"] == 1


def test_parsers_refuse_long_text_before_parsing():
    for parse in (parse_address, parse_handle):
        with pytest.raises(InvalidInput, match="too long"):
            parse(" " * (MAX_REF_LEN + 1))
    assert parse_handle("#0014") == 14 and parse_handle("handle:0x0e") == 14
    with pytest.raises(InvalidInput, match="lone surrogate"):
        parse_value("\udc80", "utf8")
    with pytest.raises(InvalidInput, match="16610-bit number"):
        parse_handle(10**5000)


async def test_an_error_quotes_a_huge_number_by_its_size(tmp_path):
    app = make_app(tmp_path)
    async with app:
        with pytest.raises(InvalidInput, match=r"max_items=a 13288-bit number is out of range"):
            await app.notifications(HRM, "2a37", 10**4000, 0)


async def test_reading_a_buffer_that_does_not_exist_is_invalid_params(tmp_path):
    async with client_on_demo(tmp_path) as c:
        for uri in (
            f"ble://notifications/{HRM}/3",
            f"ble://notifications/{HRM}/99999999999999999999",
            "ble://notifications/xx/3",
            "ble://notifications/" + " " * 1000 + "/3",
        ):
            with pytest.raises(MCPError) as refused:
                await c.read_resource(uri)
            assert refused.value.code == -32602, uri
            assert len(refused.value.message) < 300
