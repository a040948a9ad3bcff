"""A tool answers from the operation's own outcome.

The device acknowledges an operation and drops the link straight after (what a reboot or a
firmware-update command does). The operation completed, so the tool reports it as done; the drop
shows on the next call. On the simulated backend, the peripheral ends the link the moment the
backend call has returned.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client

from mcp_ble.core.server import build_server

from tests.helpers import error, make_app, ok

HRM = "C4:7C:8D:6A:12:01"
UART = "F1:22:9B:03:5E:C0"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


def drop_after(radio: Any, method: str) -> None:
    """The peripheral ends the link right after ``method`` completes."""
    real = getattr(radio, method)

    async def then_drop(address: str, *args: Any) -> Any:
        result = await real(address, *args)
        radio.drop_link(address, "remote user terminated connection")
        return result

    setattr(radio, method, then_drop)


CASES = [
    # (backend method that completes, then the link drops; tool; arguments; what it reports)
    ("read", "ble_read", {"address": HRM.lower(), "characteristic": "2a19"}, "hex"),
    (
        "write",
        "ble_write",
        {"address": UART, "characteristic": NUS_RX, "value": "reboot", "encoding": "utf8"},
        "bytes",
    ),
    (
        "read_descriptor",
        "ble_read_descriptor",
        {"address": HRM, "descriptor": "2902", "characteristic": "2a37"},
        "hex",
    ),
    (
        "write_descriptor",
        "ble_write_descriptor",
        {"address": HRM, "descriptor": "2902", "characteristic": "2a37", "value": "0100"},
        "bytes",
    ),
    ("start_notify", "ble_subscribe", {"address": HRM, "characteristic": "2a37"}, "resource"),
]


@pytest.mark.parametrize(("method", "tool", "args", "field"), CASES, ids=[c[1] for c in CASES])
async def test_a_completed_operation_is_reported_done_though_the_link_drops(
    tmp_path, method, tool, args, field
):
    app = make_app(tmp_path, "[server]\nscan_duration_s = 2.0\n")
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=args["address"])
        drop_after(app.radio, method)
        done = await ok(c, tool, **args)
        assert done[field] is not None
        if tool == "ble_subscribe":  # the one result that names the device: canonically
            assert args["address"].upper() in done["resource"]
        # The drop shows on the next call.
        text = await error(c, "ble_read", address=args["address"], characteristic="2a19")
        assert "not connected" in text
        if tool == "ble_subscribe":
            got = await ok(c, "ble_notifications", address=HRM, characteristic="2a37", wait_s=0)
            assert "link lost" in got["ended"]


async def test_an_unsubscribe_the_device_acknowledged_is_reported_done(tmp_path):
    app = make_app(tmp_path, "[server]\nscan_duration_s = 2.0\n")
    async with Client(build_server(app)) as c:
        await ok(c, "ble_scan")
        await ok(c, "ble_connect", address=HRM)
        await ok(c, "ble_subscribe", address=HRM, characteristic="2a37")
        drop_after(app.radio, "stop_notify")
        done = await ok(c, "ble_unsubscribe", address=HRM, characteristic="2a37")
        assert done["received"] >= 0
        assert not app.connections and not app.subscriptions
