"""Every tool fuzzed through the real MCP client: no input makes an internal error.

Hypothesis generates batches of calls of every tool the server lists, mixing good arguments
(the demo world's addresses, characteristic names, handles, values) with junk (wrong types, huge
numbers, padded and malformed text, lone surrogates, missing and extra arguments). Each call must
answer with a result or a tool error carrying a stable code other than ``internal_error``.
Afterwards the server still serves and its state is consistent.

The server runs on the simulated backend with frozen time (``time_scale = 0``), in an event loop
on a background thread, so Hypothesis (synchronous) drives one long-lived MCP session.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from mcp_ble.core.server import build_server

from tests.helpers import error_code, make_app

HRM = "C4:7C:8D:6A:12:01"
THERMO = "E8:31:CD:44:09:7A"
UART = "F1:22:9B:03:5E:C0"
LAMP = "A4:C1:38:0D:52:E3"
BEACON = "D0:39:72:A1:B4:2F"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
TOTAL_CALLS = 10_000
BATCH = 40
INTERNAL = -32603  # JSON-RPC internal error

WEIRD_TEXT = [
    "",
    " ",
    "\udc80",
    "a\ud800b",
    "\x00",
    "#",
    "#0",
    "#0014",
    "#0x",
    "#0x0e",
    "handle:",
    "handle:-1",
    "#-3",
    "#" + "9" * 5000,
    "9" * 5000,
    " " * 100_000 + "2a19",
    "0x2A19",
    "{0000180d-0000-1000-8000-00805f9b34fb}",
    "urn:uuid:0000180d-0000-1000-8000-00805f9b34fb",
    "ble://notifications/x/1",
    "💙",
    "٣",
    "#٣",
    "NaN",
    "null",
]
addresses = st.one_of(
    st.sampled_from(
        [HRM, THERMO, UART, LAMP, BEACON, HRM.lower(), f"  {UART}  ", "C4-7C-8D-6A-12-01"]
    ),
    st.sampled_from(
        ["00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "12345678-1234-5678-1234-56789abcdef0"]
    ),
    st.sampled_from(WEIRD_TEXT),
    st.text(max_size=24),
)
refs = st.one_of(
    st.sampled_from(["2a19", "2a37", "2a38", "2a29", "2a6e", "fff1", "fff2", NUS_RX, NUS_TX]),
    st.sampled_from(["2902", "2901", "#3", "#4", "#5", "#6", "#9", "#0x03", "handle:3"]),
    st.integers(min_value=-3, max_value=70),
    st.integers(),
    st.sampled_from([2**64, -(2**64), 10**30, 0xFFFF, 0x10000]),
    st.sampled_from(WEIRD_TEXT),
    st.text(max_size=40),
)
#: Typed values (an object of fields, encoded by the decoder plugins): right, wrong and junk.
typed_values = st.recursive(
    st.one_of(st.integers(), st.floats(), st.text(max_size=8), st.booleans(), st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(["value", "year", "month", "day"]), st.text(max_size=6)),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
).filter(lambda v: isinstance(v, dict)) | st.sampled_from(
    [{"value": 21.5}, {"value": 87}, {"value": "high_alert"}, {"value": 2**80}]
)
values = st.one_of(
    st.binary(max_size=40).map(bytes.hex),
    st.sampled_from(["00", "01", "0100", "0200", "de:ad be-ef", "0x01ff", "AQID", "aGk=", "hi"]),
    st.sampled_from(WEIRD_TEXT),
    st.text(max_size=40),
    st.just("00" * 700),
    typed_values,
)
numbers = st.one_of(
    st.floats(min_value=0.0, max_value=0.05),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 0.0001, 1e-9, 301, 10_001, 1e308]),
)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.text(max_size=10),
    st.integers(),
)

ARGS: dict[str, st.SearchStrategy[Any]] = {
    "address": addresses,
    "characteristic": st.one_of(refs, st.none()),
    "descriptor": refs,
    "value": values,
    "encoding": st.one_of(st.sampled_from(["hex", "utf8", "base64"]), st.text(max_size=8)),
    "response": st.sampled_from(["auto", True, False, "true", "false", "maybe", 1, None]),
    "duration_s": st.one_of(st.floats(min_value=0.01, max_value=3.0), numbers, st.none()),
    "timeout_s": st.one_of(st.floats(min_value=0.1, max_value=5.0), numbers, st.none()),
    "wait_s": st.one_of(st.floats(min_value=0, max_value=0.01), numbers),
    "max_items": st.one_of(st.integers(min_value=1, max_value=100), st.integers()),
    "limit": st.one_of(st.integers(min_value=1, max_value=100), st.integers()),
    "name": st.one_of(st.none(), st.sampled_from(["hrm", "Lamp", "x" * 300]), st.text(max_size=8)),
    "service_uuid": st.one_of(st.none(), refs),
    "min_rssi": st.one_of(st.none(), st.integers(min_value=-127, max_value=20), st.integers()),
    "manufacturer_id": st.one_of(st.none(), st.integers(min_value=-1, max_value=0x10001)),
    "refresh": st.one_of(st.booleans(), junk),
    "read_values": st.one_of(st.booleans(), junk),
}
#: Tools that set up state the others need, drawn more often so deeper paths get exercised.
FAVOURED = ["ble_connect", "ble_connect", "ble_read", "ble_subscribe", "ble_write"]


@st.composite
def calls(draw: st.DrawFn, tools: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
    """One call of a listed tool: its arguments (named by its input schema) good, junk or left
    out, now and then an argument it does not have, or a tool that does not exist."""
    tool = draw(st.sampled_from([*tools, *FAVOURED]))
    args: dict[str, Any] = {}
    for name in tools[tool]:
        choice = draw(st.integers(min_value=0, max_value=19))
        if choice == 0:
            continue  # left out
        args[name] = draw(junk) if choice == 1 else draw(ARGS.get(name, junk))
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        args[draw(st.text(min_size=1, max_size=8))] = draw(junk)
    if draw(st.integers(min_value=0, max_value=49)) == 0:
        tool = draw(st.sampled_from(["ble_nope", "", "ble_read ", "BLE_READ"]))
    return tool, args


class Served:
    """An MCP client session on the demo world, in an event loop on its own thread."""

    def __init__(self, tmp_path: Any) -> None:
        # Writes open, so the write paths run to the radio (the policy is tested elsewhere).
        config = '[server]\nscan_duration_s = 1.0\nwrite_policy = "open"\n'
        self.app = make_app(tmp_path, config, time_scale=0)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.client: Client | None = None
        self.failure: BaseException | None = None
        self.codes: Counter[str] = Counter()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the test thread
            self.failure = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.stop = asyncio.Event()
        async with Client(build_server(self.app)) as client:
            self.client = client
            self.ready.set()
            await self.stop.wait()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, tool: str, args: dict[str, Any]) -> str:
        """Call a tool; return ``ok``, the tool error's code, or ``jsonrpc <code>``."""
        assert self.client is not None
        try:
            result = self.run(self.client.call_tool(tool, args))
        except MCPError as exc:
            return f"jsonrpc {exc.code}"
        return error_code(result) if result.is_error else "ok"


@contextmanager
def served(tmp_path: Any) -> Iterator[Served]:
    server = Served(tmp_path)
    server.thread.start()
    server.ready.wait(30)
    if server.failure is not None:
        raise server.failure
    try:
        yield server
    finally:
        if server.stop is not None:
            server.loop.call_soon_threadsafe(server.stop.set)
        server.thread.join(30)
        server.loop.close()


def test_every_tool_fuzzed_gives_no_internal_error(tmp_path):
    with served(tmp_path) as server:
        assert server.call("ble_scan", {"duration_s": 1.0}) == "ok"
        assert server.client is not None
        listed = server.run(server.client.list_tools()).tools
        tools = {t.name: list(t.input_schema.get("properties", {})) for t in listed}
        assert set(FAVOURED) <= set(tools) and len(tools) >= 15

        @settings(
            max_examples=TOTAL_CALLS // BATCH,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(calls(tools), min_size=BATCH, max_size=BATCH))
        def batch(batch_calls: list[tuple[str, dict[str, Any]]]) -> None:
            for tool, args in batch_calls:
                outcome = server.call(tool, args)
                server.codes[outcome] += 1
                assert outcome not in {"internal_error", f"jsonrpc {INTERNAL}"}, (tool, args)

        batch()
        total = sum(server.codes.values())
        assert total >= TOTAL_CALLS, server.codes
        assert server.codes["ok"] >= total // 10, server.codes  # deep paths were reached too

        # Still serving, with its state intact and consistent.
        app = server.app
        assert not app.in_flight and not app.subscribing
        assert len(app._connect_locks) == 0 and len(app._target_locks) == 0
        status = server.call("ble_status", {})
        assert status == "ok"
        for address in list(app.connections):
            assert server.call("ble_disconnect", {"address": address}) == "ok"
        assert server.call("ble_scan", {"duration_s": 1.0}) == "ok"
        assert server.call("ble_connect", {"address": HRM}) == "ok"
        assert server.call("ble_read", {"address": HRM, "characteristic": "2a19"}) == "ok"
        assert server.call("ble_subscribe", {"address": HRM, "characteristic": "2a37"}) == "ok"
        assert server.call("ble_unsubscribe", {"address": HRM, "characteristic": "2a37"}) == "ok"
