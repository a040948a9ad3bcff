"""``mcp-ble demo``: a real MCP client session against ``mcp-ble serve`` over stdio.

The client is the MCP SDK's own; the server runs as a subprocess exactly as a desktop MCP client
would start it. Every step prints the call, then one line of what came back: the text the agent
reads (compact JSON, shortened when long), or the error as the agent sees it. A step is one
``Transcript.call``; a new step is one more call in ``session``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
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
WIDTH = 150  # characters of a result line before it is shortened
#: Decoder plugins the demo world's broadcasting sensors need (a BTHome v2 thermometer, an
#: iBeacon, a Govee hygrometer); the demo enables those that are installed. Settings order
#: decides who answers first: govee, which tries every payload, comes after ibeacon.
DEMO_DECODERS = ("bthome", "ibeacon", "govee")


def shorten(text: str, width: int = WIDTH) -> str:
    """``text`` on one line, cut to ``width`` with the full length said when it is longer."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return f"{text[: width - 20]}... ({len(text)} chars)"


class Transcript:
    """Runs the steps: each prints the call and one line of what came back."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.started = time.monotonic()
        self.steps = 0

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        print(f"\n> {tool}({shown})")
        t0 = time.monotonic()
        result = await self.client.call_tool(tool, arguments)
        ms = (time.monotonic() - t0) * 1000
        self.steps += 1
        text = getattr(result.content[0], "text", "") if result.content else ""
        if result.is_error:
            print(f"< ({ms:.0f} ms) ERROR (as the agent sees it): {shorten(text)}")
            return {}
        print(f"< ({ms:.0f} ms) {shorten(text)}")
        return result.structured_content or {}

    async def read_resource(self, uri: str, wanted: tuple[str, ...]) -> None:
        t0 = time.monotonic()
        result = await self.client.read_resource(uri)
        ms = (time.monotonic() - t0) * 1000
        self.steps += 1
        text = getattr(result.contents[0], "text", "")
        lines = [line for line in text.splitlines() if line.startswith(wanted)]
        print(f"\n> resources/read {uri}")
        print(
            f"< ({ms:.0f} ms) {len(text.splitlines())} lines of Prometheus text; "
            + "; ".join(lines)
        )


def demo_plugins(enabled: list[str], loadable: Iterable[str]) -> str | None:
    """The ``--plugins`` of the demo's server: the configured plugins, then the demo world's
    decoders among the ``loadable`` ones (None: none of them is installed, keep the settings)."""
    if "decoders" in enabled:  # every installed decoder is on already
        return None
    extra = [name for name in DEMO_DECODERS if name in set(loadable) and name not in enabled]
    return ",".join([*enabled, *extra]) if extra else None


def say(text: str) -> None:
    """A note for the person watching (not something the server returned)."""
    print(f"  # {text}")


async def approve_on_screen(context: Any, params: Any) -> types.ElicitResult:
    """The person's side of server.write_policy = "confirm": show the server's question and
    approve it (a real client would wait for a click here)."""
    print(f"  [server asks the person] {params.message}")
    print("  [person] approve: yes")
    return types.ElicitResult(action="accept", content={"approve": True})


def demo_added(enabled: list[str], plugins: str | None) -> list[str]:
    """The demo world's decoders that ``plugins`` (the demo server's ``--plugins``) turns on
    beyond the settings' ``enabled``."""
    names = set(plugins.split(",")) if plugins else set()
    return [name for name in DEMO_DECODERS if name in names and name not in enabled]


async def run_demo(
    config: Path | None = None,
    backend: str | None = None,
    plugins: str | None = None,
    added: list[str] | None = None,
) -> int:
    backend = backend or "simulated"
    args = ["-m", "mcp_ble.core.cli", "serve", "--backend", backend]
    if config is not None:
        args += ["--config", str(config)]
    if plugins is not None:
        args += ["--plugins", plugins]
    # Writes need a person's approval (the shipped default, set here whatever the settings
    # file says): the demo client answers the question on screen.
    env = {**os.environ, "MCP_BLE_SERVER__WRITE_POLICY": "confirm"}
    params = StdioServerParameters(command=sys.executable, args=args, env=env)
    if backend == "simulated":
        print(
            "mcp-ble demo: SIMULATED devices. The Bluetooth devices below are virtual (the "
            "simulated backend's demo world), not real hardware."
        )
    else:
        print(f"mcp-ble demo on the {backend} backend: real Bluetooth devices near this machine.")
    print("The MCP SDK client drives `mcp-ble serve` over stdio, as a desktop client would.")
    print("Each step: > the call, < what came back (the text the agent reads).")
    if added:
        print(
            f"Sensor decoders turned on for this demo (--plugins): {', '.join(added)}. The "
            "shipped settings enable none: pip install 'mcp-ble[decoders]' and add \"decoders\" "
            "(every one installed) to the settings' plugins to have them in `mcp-ble serve`."
        )
    async with Client(params, elicitation_callback=approve_on_screen) as client:
        t = Transcript(client)
        await session(t)
        print(f"\ndemo finished: {t.steps} steps in {time.monotonic() - t.started:.1f} s")
    return 0


async def session(t: Transcript) -> None:
    """The demo's steps, in order."""
    tools = await t.client.list_tools()
    print(f"\n> tools/list\n< {len(tools.tools)} tools: {', '.join(x.name for x in tools.tools)}")

    status = await t.call("ble_status")
    if status.get("simulated"):
        say("simulated=true: the server says so too, so an agent knows these are not real")

    say("asked 'how warm is the living room?', an agent needs one call and no connect:")
    await t.call("ble_sensors", measurement="temperature", name="living room")

    scan = await t.call("ble_scan", duration_s=2.0)
    devices = scan.get("devices", [])

    def find(service: str) -> str | None:
        for d in devices:
            uuids = [s.split(" ", 1)[0] for s in d.get("services", [])]
            if service in uuids and d.get("connectable", True):
                return str(d["address"])
        return None

    hrm = find(HRS)
    if hrm:
        await t.call("ble_connect", address=hrm)
        await t.call("ble_services", address=hrm)
        await t.call("ble_read", address=hrm, characteristic=BATTERY)
        await t.call("ble_read", address=hrm, characteristic=LOCATION)
        await t.call("ble_subscribe", address=hrm, characteristic=HRM)
        await t.call("ble_notifications", address=hrm, characteristic=HRM, max_items=3, wait_s=3)

    thermo = find(ENV_SENSING)
    if thermo:
        await t.call("ble_connect", address=thermo)
        await t.call("ble_read", address=thermo, characteristic=TEMPERATURE)
        await t.call("ble_read", address=thermo, characteristic=HUMIDITY)

    uart = find(NUS)
    if uart:
        await t.call("ble_connect", address=uart)
        await t.call("ble_subscribe", address=uart, characteristic=NUS_TX)
        await t.call(
            "ble_write",
            address=uart,
            characteristic=NUS_RX,
            value="hello from mcp-ble",
            encoding="utf8",
        )
        await t.call("ble_notifications", address=uart, characteristic=NUS_TX, wait_s=2)

    say("a mistake, to show what an agent gets back:")
    await t.call("ble_read", address=hrm or "00:00:00:00:00:00", characteristic="2a99")

    await t.read_resource(
        "ble://metrics",
        ("ble_connection_success_total ", "ble_devices_found_total "),
    )

    for conn in (await t.call("ble_connections")).get("connections", []):
        await t.call("ble_disconnect", address=conn["address"])


__all__ = ["demo_added", "demo_plugins", "run_demo", "shorten"]
