"""MCP clients nobody here wrote, against `mcp-ble serve` (simulated backend, demo world), over
stdio and streamable HTTP: the official MCP Inspector CLI (2.x) and a bare client on the official
TypeScript SDK (1.x), both installed with npm under tests/clients/.

What is checked is what the model would be shown: the text of the tool result, or, when the
client refuses the result, the message of the error it raises instead. Both clients validate
structured content against the tool's output schema, so a result they reject shows up here as
their validation message instead of ours."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tests.external import CLIENTS, http_server, missing, node_env, require_npm_bin, serve_command

HRM = "C4:7C:8D:6A:12:01"  # the demo's heart-rate strap; battery level 0x57 = 87 %
NEVER_HEARD = "AA:BB:CC:DD:EE:FF"

CLIENT_NAMES = ("inspector", "sdk")
TRANSPORTS = ("stdio", "http")


@dataclass
class Shown:
    """What a client shows for one tool call."""

    text: str
    is_error: bool


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = node_env(tmp_path_factory.mktemp("home"))
    # Simulated time runs ten times faster than real time; every duration below is simulated.
    env["MCP_BLE_BACKENDS__SIMULATED__TIME_SCALE"] = "0.1"
    return env


@pytest.fixture
def http_url(env: dict[str, str]) -> Any:
    """A fresh server per test: a connected device stops advertising, so tests share none."""
    with http_server(env) as url:
        yield url


def _visible(payload: Any) -> Shown:
    """The Inspector CLI prints the tool result as JSON, or {"error": {...}} when it refused it."""
    if isinstance(payload, dict) and "error" in payload and "content" not in payload:
        error = payload["error"]
        return Shown(str(error.get("message", error)), True)
    texts = [c["text"] for c in payload.get("content", []) if c.get("type") == "text"]
    return Shown("\n".join(texts), bool(payload.get("isError")))


def inspector(env: dict[str, str], target: list[str], tool: str, args: dict[str, Any]) -> Shown:
    cli = require_npm_bin("mcp-inspector")
    command = [str(cli), "--cli", *target, "--method", "tools/call", "--tool-name", tool]
    for key, value in args.items():
        command += ["--tool-arg", f"{key}={value}"]
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, cwd=env["HOME"]
    )
    try:
        payload = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"the Inspector printed no JSON (exit {proc.returncode}): "
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        ) from None
    return _visible(payload)


def sdk(
    env: dict[str, str], target: list[str], calls: list[tuple[str, dict[str, Any]]]
) -> list[Shown]:
    node = require_npm_bin("node")
    if not (CLIENTS / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        missing("the TypeScript SDK (@modelcontextprotocol/sdk under tests/clients)")
    script = CLIENTS / "sdk_client.mjs"
    proc = subprocess.run(
        [str(node), str(script), *target],
        input=json.dumps([{"tool": t, "args": a} for t, a in calls]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=CLIENTS,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [Shown(r["text"], r["isError"]) for r in json.loads(proc.stdout)]


def run(
    client: str,
    transport: str,
    env: dict[str, str],
    url: str | None,
    calls: list[tuple[str, dict[str, Any]]],
) -> list[Shown]:
    """Run the calls in order. The TypeScript client keeps one session for all of them; the
    Inspector CLI makes one connection per call, and over stdio that is one server per call."""
    target = [url] if transport == "http" and url else ["--", *serve_command()]
    if client == "sdk":
        return sdk(env, target, calls)
    if transport == "stdio":
        # One server per call, so the calls are independent: run them side by side.
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda c: inspector(env, serve_command(), *c), calls))
    return [inspector(env, target, tool, args) for tool, args in calls]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=CLIENT_NAMES)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def target_url(transport: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("http_url")) if transport == "http" else None


def test_successful_calls_show_their_result(client, transport, env, request):
    calls: list[tuple[str, dict[str, Any]]] = [
        ("ble_scan", {"name": "HRM", "duration_s": 5, "limit": 1}),
        ("ble_connect", {"address": HRM}),
    ]
    if not (client == "inspector" and transport == "stdio"):
        # One server for the whole session: read over the link just made.
        calls.append(("ble_read", {"address": HRM, "characteristic": "2a19"}))
    # The Inspector over stdio starts a new server for every call: its ble_connect runs on a
    # server that never scanned, and finds the device by itself.
    shown = run(client, transport, env, target_url(transport, request), calls)
    scan, connect = shown[:2]
    assert not scan.is_error, scan.text
    assert "HRM Strap" in scan.text and HRM in scan.text
    assert not connect.is_error and '"mtu"' in connect.text, connect.text
    if len(shown) > 2:
        read = shown[2]
        assert not read.is_error, read.text
        assert "87" in read.text  # the battery level, decoded


def test_inspector_lists_tools_with_schemas(env, request):
    """tools/list through the Inspector over HTTP: every tool the server registers arrives, and
    the Inspector's schema-portability check (--strict prints every finding) finds nothing."""
    cli = require_npm_bin("mcp-inspector")
    url = str(request.getfixturevalue("http_url"))
    proc = subprocess.run(
        [str(cli), "--cli", url, "--method", "tools/list", "--strict"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=env["HOME"],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "portability" not in proc.stderr and "Warning: tool" not in proc.stderr, proc.stderr
    tools = {t["name"]: t for t in json.loads(proc.stdout)["tools"]}
    for name in ("ble_scan", "ble_connect", "ble_read", "ble_write", "ble_status"):
        assert name in tools and tools[name]["inputSchema"]["type"] == "object"


THERMO = "E8:31:CD:44:09:7A"  # in the demo world, never connected by these tests

FAILURES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    # (tool, arguments, what the model must be shown: our code and our message)
    (
        "ble_connect",
        {"address": NEVER_HEARD, "timeout_s": 2},
        ("device_not_found", f"No device with address {NEVER_HEARD}"),
    ),
    (
        "ble_read",
        {"address": THERMO, "characteristic": "2a19"},
        ("not_connected", f"{THERMO} is not connected"),
    ),
    # Refused by the input schema: out of range, and a required argument missing.
    ("ble_scan", {"limit": 0}, ("invalid_input", "limit=0", "from 1 to 1000")),
    ("ble_read", {"address": THERMO}, ("invalid_input", "characteristic is required")),
]


def test_failures_show_our_message_and_code(client, transport, env, request):
    shown = run(
        client, transport, env, target_url(transport, request), [(t, a) for t, a, _ in FAILURES]
    )
    for (tool, args, expected), result in zip(FAILURES, shown, strict=True):
        assert result.is_error, (tool, args, result.text)
        for part in expected:
            assert part in result.text, (tool, args, result.text)
        # What TypeScript clients showed when they rejected an error result against the schema.
        assert "must have required property" not in result.text
        assert not result.text.startswith("Error executing tool")
