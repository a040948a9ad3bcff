"""Every request gets an answer, also one whose JSON holds a lone surrogate escape ("\\uD800"):
JSON-RPC -32602 with the request's id, naming the argument (core/not_unicode.py). Text that is not
JSON keeps -32700; on stdio it is answered with id null instead of dropped.

Driven by the TypeScript SDK client (tests/clients) over stdio and HTTP, and by raw lines and
POSTs where the point is the exact bytes on the wire."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from mcp_ble.core.not_unicode import METHOD, rewrite

from tests.external import http_server, node_env, serve_command
from tests.test_clients import HRM, sdk

LONE = "ab\ud800cd"  # json.dumps writes it as the escape "ab\ud800cd"
WRITE = {"address": HRM, "characteristic": "2a19", "value": LONE, "encoding": "utf8"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = node_env(tmp_path_factory.mktemp("home"))
    env["MCP_BLE_BACKENDS__SIMULATED__TIME_SCALE"] = "0.1"
    return env


@pytest.fixture(scope="module")
def http_url(env: dict[str, str]) -> Iterator[str]:
    """One HTTP server for the module: nothing here connects or changes what it holds (every
    write is refused before it reaches the radio), and each start costs seconds."""
    with http_server(env) as url:
        yield url


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_ts_sdk_gets_invalid_params_not_a_timeout(
    transport: str, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [("ble_write", WRITE), ("ble_status", {})]
    url = str(request.getfixturevalue("http_url")) if transport == "http" else ""
    started = time.monotonic()
    if url:
        shown = sdk(env, [url], calls)
    else:
        shown = sdk(env, ["--", *serve_command()], calls)
    refused, status = shown
    assert refused.is_error, refused.text
    assert "-32602" in refused.text, refused.text  # not a transport error, not a timeout
    for part in ("argument value of ble_write", "not valid Unicode", 'encoding="hex"', "base64"):
        assert part in refused.text, refused.text
    assert not status.is_error and '"backend"' in status.text, status.text  # still serving
    # The client's own timeout is 60 s; an answer comes at once (generous bound: slow machine).
    assert time.monotonic() - started < 45


def _initialize(version: str = "2025-11-25") -> dict[str, Any]:
    info = {"name": "raw", "version": "1"}
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": info}
    return {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}


def _call(ident: Any, name: str, arguments: dict[str, Any]) -> str:
    params = {"name": name, "arguments": arguments}
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params})


def test_stdio_answers_every_line(env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        serve_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env=env, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        lines = [
            json.dumps(_initialize()),
            json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            _call("w-1", "ble_write", WRITE),
            '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{',  # not JSON
            '{"id": 9, "hello": 1}',  # JSON, not JSON-RPC
            # A surrogate pair is valid Unicode: the call runs (the name matches no device).
            _call(10, "ble_scan", {"name": "\U0001f600", "duration_s": 1}),
        ]
        proc.stdin.write("\n".join(lines) + "\n")
        proc.stdin.flush()
        answers = [json.loads(proc.stdout.readline()) for _ in range(5)]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    init, refused, parse, invalid, scan = answers
    assert init["id"] == 0 and "result" in init
    assert refused["id"] == "w-1" and refused["error"]["code"] == -32602
    assert refused["error"]["data"] == {"argument": "value"}
    assert parse == {"jsonrpc": "2.0", "id": None, "error": parse["error"]}
    assert parse["error"]["code"] == -32700
    assert invalid["id"] == 9 and invalid["error"]["code"] == -32600
    assert scan["id"] == 10 and "result" in scan and not scan["result"].get("isError"), scan


def test_http_answers_with_the_request_id(http_url: str) -> None:
    url = http_url
    with httpx.Client(timeout=30) as client:
        accept = {"Accept": "application/json, text/event-stream"}
        first = client.post(url, json=_initialize(), headers=accept)
        assert first.status_code == 200, first.text
        headers = {**accept, "mcp-session-id": first.headers["mcp-session-id"]}
        headers["mcp-protocol-version"] = "2025-11-25"
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert client.post(url, json=note, headers=headers).status_code == 202

        def post(body: str) -> httpx.Response:
            type_ = {"Content-Type": "application/json"}
            return client.post(url, content=body.encode(), headers={**headers, **type_})

        refused = post(_call(41, "ble_write", WRITE))
        assert refused.status_code == 200, refused.text
        text = refused.text
        payload = json.loads(text[text.index("{") : text.rindex("}") + 1])  # JSON or one SSE event
        assert payload["id"] == 41 and payload["error"]["code"] == -32602, payload
        broken = post('{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{')
        assert broken.status_code == 400 and broken.json()["error"]["code"] == -32700
        # Without the session the SDK still refuses it: the rewrite skips no check.
        json_type = {**accept, "Content-Type": "application/json"}
        alone = client.post(url, content=_call(43, "ble_write", WRITE).encode(), headers=json_type)
        assert alone.status_code == 400 and "session" in alone.text.lower(), alone.text


def test_http_stateless_revision_reaches_the_tool(http_url: str) -> None:
    """On 2026-07-28 the SDK reads the body with json.loads and checks the routing headers
    against it: the body is left as sent, and the tool refuses the text itself."""
    version = "2026-07-28"
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    params = {"name": "ble_write", "arguments": WRITE, "_meta": meta}
    body = json.dumps({"jsonrpc": "2.0", "id": 51, "method": "tools/call", "params": params})
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": version,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "ble_write",
    }
    with httpx.Client(timeout=30) as client:
        reply = client.post(http_url, content=body.encode(), headers=headers)
    text = reply.text
    payload = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert payload["id"] == 51 and payload["result"]["isError"], payload
    assert payload["result"]["content"][0]["text"].startswith("invalid_input"), payload


def test_rewrite_names_the_argument_and_leaves_the_rest() -> None:
    new = rewrite(_call(5, "ble_write", {"value": {"k": ["ok", LONE]}}))
    assert new is not None
    assert json.loads(new) == {
        "jsonrpc": "2.0",
        "id": 5,
        "method": METHOD,
        "params": {"method": "tools/call", "where": "value.k[1]", "tool": "ble_write"},
    }
    read = {"jsonrpc": "2.0", "id": "r", "method": "resources/read", "params": {"uri": LONE}}
    assert json.loads(rewrite(json.dumps(read)) or b"")["params"]["where"] == "uri"
    assert rewrite(_call(6, "ble_write", {"value": "\U0001f600"})) is None  # a valid pair
    assert rewrite('{"id": 7, "method": "x", "params": {"a": "\\uD800"') is None  # not JSON
    note = {"jsonrpc": "2.0", "method": "notifications/x", "params": {"a": LONE}}
    assert rewrite(json.dumps(note)) is None  # a notification gets no answer
