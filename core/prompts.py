"""MCP prompts: guided sessions a person can start from their client's prompt menu.

- ``explore_device(address)``: a walk through a device's services and decoded values.
- ``diagnose_connection(address)``: what to check when a device will not connect or keeps
  dropping, with ``ble_status``, ``ble_connections``, the error codes and ``mcp-ble doctor``.

A malformed address is an invalid parameter of ``prompts/get`` (JSON-RPC -32602, MCP spec
server/prompts "Error Handling"), like an unknown prompt or a missing argument.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import Field

from .errors import BleError
from .values import parse_address

Address = Annotated[
    str, Field(description="the device's Bluetooth address, e.g. C4:7C:8D:6A:12:01")
]


def checked(address: str) -> str:
    try:
        return parse_address(address)
    except BleError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc), data={"address": address}) from None


def explore_device(address: Address) -> str:
    """Explore a device: its services, characteristics and current values, step by step."""
    a = checked(address)
    return f"""Explore the Bluetooth LE device {a} with the mcp-ble tools, step by step, then tell \
me what it is and what it measures.

1. ble_status: if it says simulated=true, the device is virtual; say so in your answer.
2. ble_connect(address="{a}"). If the error code is device_not_found, run ble_scan first \
(it lists what is in range) and connect again.
3. ble_services(address="{a}", read_values=true): one call lists every service and \
characteristic (SIG names, properties, value handles) and reads every readable value. Decoded \
fields carry their unit in the name (battery_level_percent, heart_rate_bpm, temperature_c); \
"text" is a string value; "hex" is the raw bytes. A characteristic with "error" could not be \
read: its message says why (e.g. Insufficient Authentication: ble_pair, then read again).
4. For each characteristic whose properties include notify or indicate: ble_subscribe, then \
ble_notifications(wait_s=3) for a few values, then ble_unsubscribe.
5. Where a characteristic lists descriptor 2901, ble_read_descriptor(descriptor="2901", \
characteristic=...) gives its human-readable description.
6. Do not write anything unless I ask: a write can change the device.
7. ble_disconnect(address="{a}") when done.

Summarize: what the device is (name, maker, model, firmware when listed), each service in plain \
words, the current values with their units, what it streams and how often, and every error \
with its code."""


def diagnose_connection(address: Address) -> str:
    """Find out why a device will not connect or keeps dropping the link."""
    a = checked(address)
    return f"""The Bluetooth LE device {a} will not connect or keeps dropping. Diagnose it with \
the mcp-ble tools, step by step; tell me the cause, the evidence (which call showed it) and the \
fix.

1. ble_status: the backend and whether it is simulated, the plugins loaded (retry, pool, \
cleanup change how connects are retried and links kept), and how many links are up.
2. ble_connections: is {a} connected already? Its idle_s, and each subscription's "ended" \
reason: "link lost: ..." says why the last link dropped (supervision timeout: out of range or \
interference; remote user terminated connection: the device hung up).
3. ble_scan(duration_s=5, limit=20): is {a} heard at all, and how strongly? Below about -85 dBm \
links drop; "connectable": false means it never accepts connections; not heard means out of \
range, off, or no longer advertising (often: already connected to another central, such as a \
phone app).
4. ble_connect(address="{a}", timeout_s=15) and read the error code: device_not_found (not \
heard: scan again, move closer), timeout (weak signal or busy device: retry), \
connection_failed (usually transient: retry), out_of_slots (the adapter's connection limit: \
ble_disconnect another device), backend_unavailable (the adapter or its driver).
5. If it connects but drops later: call ble_connections again after a while and compare; \
a device that disconnects idle links needs periodic reads or a subscription.
6. If the adapter or backend is in doubt, ask me to run `mcp-ble doctor` on the machine that \
runs the server: it checks the adapter, permissions and the backend, and says what to fix."""


def install(mcp: MCPServer) -> None:
    """Register the prompts on ``mcp``."""
    mcp.prompt(name="explore_device", title="Explore a BLE device")(explore_device)
    mcp.prompt(name="diagnose_connection", title="Diagnose a BLE connection")(diagnose_connection)
