"""``mcp-ble demo``: a real MCP client session against ``mcp-ble serve`` over stdio.

The client is the MCP SDK's own; the server runs as a subprocess exactly as a desktop MCP client
would start it. The transcript shows each tool call and a short reading of its result.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

HRS, BATTERY, HRM, LOCATION = "180d", "2a19", "2a37", "2a38"
ENV_SENSING, TEMPERATURE, HUMIDITY = "181a", "2a6e", "2a6f"
NUS = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


class Transcript:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.started = time.monotonic()

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        t0 = time.monotonic()
        result = await self.client.call_tool(tool, arguments)
        ms = (time.monotonic() - t0) * 1000
        print(f"\n> {tool}({shown})  [{ms:.0f} ms]")
        if result.is_error:
            text = getattr(result.content[0], "text", "")
            print(f"  ERROR (as the agent sees it): {text}")
            return {}
        return result.structured_content or {}


def _say(text: str) -> None:
    print(f"  {text}")


async def approve_on_screen(context: Any, params: Any) -> types.ElicitResult:
    """The person's side of server.write_policy = "confirm": show the server's question and
    approve it (a real client would wait for a click here)."""
    print(f"  [server asks the person] {params.message}")
    print("  [person] approve: yes")
    return types.ElicitResult(action="accept", content={"approve": True})


async def run_demo(
    config: Path | None = None, backend: str | None = None, plugins: str | None = None
) -> int:
    args = ["-m", "mcp_ble.core.cli", "serve", "--backend", backend or "simulated"]
    if config is not None:
        args += ["--config", str(config)]
    if plugins is not None:
        args += ["--plugins", plugins]
    # Writes need a person's approval (the shipped default, set here whatever the settings
    # file says): the demo client answers the question on screen.
    env = {**os.environ, "MCP_BLE_SERVER__WRITE_POLICY": "confirm"}
    params = StdioServerParameters(command=sys.executable, args=args, env=env)
    print("mcp-ble demo: the MCP SDK client drives `mcp-ble serve` over stdio")
    async with Client(params, elicitation_callback=approve_on_screen) as client:
        t = Transcript(client)
        tools = await client.list_tools()
        print(f"server offers {len(tools.tools)} tools: {', '.join(x.name for x in tools.tools)}")

        status = await t.call("ble_status")
        backend_info = status["backend"]
        _say(
            f"backend: {backend_info['name']} (simulated: {status['simulated']}), plugins: "
            f"{', '.join(p['name'] for p in status['plugins'])}"
        )

        scan = await t.call("ble_scan", duration_s=2.0)
        for d in scan["devices"]:
            services = ", ".join(s["name"] or s["short"] or s["uuid"] for s in d["services"])
            makers = ", ".join(m["company"] or str(m["company_id"]) for m in d["manufacturer_data"])
            _say(
                f"{d['address']}  {d['rssi']:>4} dBm  {d['name'] or '-':<20} "
                f"{services or '-'}{'  [' + makers + ']' if makers else ''}"
            )

        def find(service: str) -> str | None:
            for d in scan["devices"]:
                if (
                    any(service in (s["short"], s["uuid"]) for s in d["services"])
                    and d["connectable"]
                ):
                    return d["address"]
            return None

        hrm = find(HRS)
        if hrm:
            conn = await t.call("ble_connect", address=hrm)
            _say(f"connected, MTU {conn.get('mtu')}")
            tree = await t.call("ble_services", address=hrm)
            for s in tree.get("services", []):
                chars = ", ".join(
                    c["name"] or c["short"] or c["uuid"] for c in s["characteristics"]
                )
                _say(f"{s['name'] or s['uuid']}: {chars}")
            battery = await t.call("ble_read", address=hrm, characteristic=BATTERY)
            _say(f"battery: {battery['decoded']}")
            location = await t.call("ble_read", address=hrm, characteristic=LOCATION)
            _say(f"sensor location: {location['decoded']}")
            await t.call("ble_subscribe", address=hrm, characteristic=HRM)
            got: list[int] = []
            for _ in range(3):
                batch = await t.call(
                    "ble_notifications", address=hrm, characteristic=HRM, max_items=10, wait_s=3
                )
                got += [n["value"]["decoded"]["heart_rate_bpm"] for n in batch["notifications"]]
                if len(got) >= 3:
                    break
            _say(f"heart rate notifications (bpm): {got}")

        thermo = find(ENV_SENSING)
        if thermo:
            await t.call("ble_connect", address=thermo)
            temperature = await t.call("ble_read", address=thermo, characteristic=TEMPERATURE)
            humidity = await t.call("ble_read", address=thermo, characteristic=HUMIDITY)
            _say(f"temperature {temperature['decoded']}, humidity {humidity['decoded']}")

        uart = find(NUS)
        if uart:
            await t.call("ble_connect", address=uart)
            await t.call("ble_subscribe", address=uart, characteristic=NUS_TX)
            message = "hello from mcp-ble"
            wrote = await t.call(
                "ble_write", address=uart, characteristic=NUS_RX, value=message, encoding="utf8"
            )
            _say(
                f"wrote {wrote.get('bytes_written')} bytes "
                f"(with response: {wrote.get('with_response')})"
            )
            echoed = await t.call(
                "ble_notifications", address=uart, characteristic=NUS_TX, wait_s=2
            )
            _say(
                "UART echoed: " + "".join(n["value"]["text"] or "" for n in echoed["notifications"])
            )

        print("\nA mistake, to show what an agent gets back:")
        await t.call("ble_read", address=hrm or "00:00:00:00:00:00", characteristic="2a99")

        metrics = await client.read_resource("ble://metrics")
        text = getattr(metrics.contents[0], "text", "")
        wanted = (
            "ble_connection_success_total ",
            "ble_devices_found_total ",
            "ble_transfer_latency_seconds_count ",
        )
        print("\n> resources/read ble://metrics (excerpt)")
        for line in text.splitlines():
            if line.startswith(wanted):
                _say(line)

        for conn in (await t.call("ble_connections"))["connections"]:
            await t.call("ble_disconnect", address=conn["address"])
        print(f"\ndemo finished in {time.monotonic() - t.started:.1f} s")
    return 0
