"""The ``tokens`` bench group: what one scripted agent session costs in characters.

An agent pays for every character it reads. The session lists the tools, scans, connects to the
heart-rate strap, lists its services, reads its battery, writes to the UART bridge, subscribes to
the heart rate and drains one notification. Each figure is the length of what the agent reads:
the compact JSON of the ``tools/list`` result (output schemas included) and the text content of
each tool result. ``notification_chars`` is what one more notification adds to a
``ble_notifications`` result (its item and the comma before it).

``scan_decoded_chars`` is the same 2 s scan with the demo world's advertisement decoders on
(:data:`~mcp_ble.core.tooling.demo.DEMO_DECODERS`): the thermometer's, the hygrometer's and the
beacon's readings shown in place of the hex they were read from.

Each figure has a ceiling (``CEILINGS``); the scans' is 1,200 characters for 7 devices, scaled
to the number of devices the scan returned.
"""

from __future__ import annotations

import json
from typing import Any

HRM = "C4:7C:8D:6A:12:01"
UART = "F1:22:9B:03:5E:C0"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"

#: figure name -> most characters allowed
CEILINGS: dict[str, int] = {
    "tools_list_chars": 12_700,  # 12,000 + ble_sensors and the readings of scan/devices
    "scan_result_chars": 1_200,  # for 7 devices
    "scan_decoded_chars": 1_200,  # for 7 devices, the demo's decoders on
    "services_list_chars": 800,
    "read_chars": 70,
    "write_chars": 40,
    "notification_chars": 70,
}
SCAN_CEILING_DEVICES = 7


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def scan_ceiling(devices: int) -> int:
    return CEILINGS["scan_result_chars"] * devices // SCAN_CEILING_DEVICES


async def token_session(app: Any) -> dict[str, int]:
    """Run the session against ``app`` (the demo world) through an in-process MCP client;
    return ``{figure: characters}`` plus ``scan_devices``."""
    from mcp.client import Client

    from ...server import build_server

    figures: dict[str, int] = {}
    async with Client(build_server(app, manage_app=False)) as client:

        async def text(tool: str, **args: Any) -> str:
            result = await client.call_tool(tool, args)
            body = str(getattr(result.content[0], "text", ""))
            if result.is_error:
                raise RuntimeError(f"{tool} failed in the token session: {body}")
            return body

        listed = await client.list_tools()
        figures["tools_list_chars"] = len(
            compact(listed.model_dump(by_alias=True, mode="json", exclude_none=True))
        )
        scan = await text("ble_scan", duration_s=2.0)
        figures["scan_result_chars"] = len(scan)
        figures["scan_devices"] = len(json.loads(scan)["devices"])
        await text("ble_connect", address=HRM)
        figures["services_list_chars"] = len(await text("ble_services", address=HRM))
        figures["read_chars"] = len(await text("ble_read", address=HRM, characteristic="2a19"))
        await text("ble_connect", address=UART)
        written = await text(
            "ble_write", address=UART, characteristic=NUS_RX, value="hello", encoding="utf8"
        )
        figures["write_chars"] = len(written)
        await text("ble_subscribe", address=HRM, characteristic="2a37")
        drained = json.loads(
            await text(
                "ble_notifications", address=HRM, characteristic="2a37", max_items=1, wait_s=5
            )
        )
        items = drained["notifications"]
        if not items:
            raise RuntimeError("the heart-rate strap sent no notification within 5 s")
        figures["notification_chars"] = len(compact(items[0])) + 1
    return figures


async def decoded_scan(app: Any) -> dict[str, int]:
    """A 2 s scan of ``app`` (the demo world with its decoders on) through an in-process MCP
    client: ``scan_decoded_chars``, ``scan_decoded_devices`` and ``scan_readings_chars`` (what
    the ``"readings":{...}`` members take of it, with their commas)."""
    from mcp.client import Client

    from ...server import build_server

    async with Client(build_server(app, manage_app=False)) as client:
        result = await client.call_tool("ble_scan", {"duration_s": 2.0})
    body = str(getattr(result.content[0], "text", ""))
    if result.is_error:
        raise RuntimeError(f"ble_scan failed in the token session: {body}")
    devices = json.loads(body)["devices"]
    readings = [compact({"readings": d["readings"]}) for d in devices if "readings" in d]
    return {
        "scan_decoded_chars": len(body),
        "scan_decoded_devices": len(devices),
        "scan_readings_chars": sum(len(text) - 1 for text in readings),  # '{}' less, ',' more
    }


def ceiling_of(name: str, figures: dict[str, int]) -> int:
    if name == "scan_result_chars":
        return scan_ceiling(figures["scan_devices"])
    if name == "scan_decoded_chars":
        return scan_ceiling(figures["scan_decoded_devices"])
    return CEILINGS[name]
