"""`mcp-ble serve --transport http` as a subprocess: a bearer token off loopback, 401 without it or
with a wrong one, Host and Origin checks on every bind address, the token never printed."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.helpers import write_config
from tests.http_server import CLI, FAST, clean_env, free_port, serving

TOKEN = "s3cret-token-for-the-test-0123456789"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def serve_exits(tmp_path, host: str, env: dict[str, str], settings: str = ""):
    config = write_config(tmp_path, FAST + settings)
    port = str(free_port("127.0.0.1"))
    args = ["--config", str(config), "--backend", "simulated", "--transport", "http"]
    return subprocess.run(
        [*CLI, "serve", *args, "--host", host, "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_off_loopback_without_a_token_exits_2(tmp_path):
    proc = serve_exits(tmp_path, "127.0.0.2", clean_env())
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "127.0.0.2" in line and "bearer token" in line
    assert "MCP_BLE_SERVER__HTTP_TOKEN" in line and "server.http_token_file" in line


def test_a_short_or_unreadable_token_is_refused_without_printing_it(tmp_path):
    missing = tmp_path / "nope"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ThreadPoolExecutor(2) as pool:  # two independent processes: start them side by side
        short = pool.submit(
            serve_exits,
            tmp_path / "a",
            "127.0.0.2",
            clean_env(MCP_BLE_SERVER__HTTP_TOKEN="hunter2"),
        )
        unreadable = pool.submit(
            serve_exits,
            tmp_path / "b",
            "127.0.0.2",
            clean_env(),
            f'[server]\nhttp_token_file = "{missing}"\n',
        )
    proc = short.result()
    assert proc.returncode == 2 and "hunter2" not in proc.stderr
    assert "7 characters" in proc.stderr and "at least 16" in proc.stderr
    proc = unreadable.result()
    assert proc.returncode == 2
    assert "http_token_file" in proc.stderr and "cannot read" in proc.stderr


async def test_bearer_token_host_and_origin_off_loopback(tmp_path):
    env = clean_env(MCP_BLE_SERVER__HTTP_TOKEN=TOKEN)
    async with serving(tmp_path, "127.0.0.2", env) as (url, err):
        async with httpx2.AsyncClient() as raw:
            missing = await raw.post(url, json=INITIALIZE, headers=HEADERS)
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = await raw.post(
                url, json=INITIALIZE, headers={**HEADERS, "Authorization": "Bearer " + TOKEN[:-1]}
            )
            assert wrong.status_code == 401
            good = {**HEADERS, "Authorization": f"Bearer {TOKEN}"}
            evil = await raw.post(url, json=INITIALIZE, headers={**good, "Host": "evil.example"})
            assert evil.status_code == 421
            evil = await raw.post(url, json=INITIALIZE, headers={**good, "Origin": "http://evil"})
            assert evil.status_code == 403
            assert (await raw.post(url, json=INITIALIZE, headers=good)).status_code == 200
        for mode in ("auto", "legacy"):
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
            async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as c:
                scan = await c.call_tool("ble_scan", {"name": "HRM", "duration_s": 2})
                assert [d["name"] for d in scan.structured_content["devices"]] == ["HRM Strap"]
    assert TOKEN not in b"".join(err).decode()


async def test_token_from_a_file_and_names_the_server_is_reached_by(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    settings = (
        f'[server]\nhttp_token_file = "{token_file}"\n'
        'allowed_hosts = ["ble.example.org"]\nallowed_origins = ["https://ble.example.org"]\n'
    )
    async with serving(tmp_path, "127.0.0.2", clean_env(), settings) as (url, _):
        good = {**HEADERS, "Authorization": f"Bearer {TOKEN}"}
        async with httpx2.AsyncClient() as raw:
            for host, origin, status in (
                ("ble.example.org", "https://ble.example.org", 200),  # behind a TLS proxy
                ("ble.example.org:8443", "https://ble.example.org:8443", 200),
                ("evil.example", "https://ble.example.org", 421),
                ("ble.example.org", "https://evil.example", 403),
            ):
                response = await raw.post(
                    url, json=INITIALIZE, headers={**good, "Host": host, "Origin": origin}
                )
                assert response.status_code == status, (host, origin)


async def test_loopback_keeps_host_checks_and_takes_a_token(tmp_path):
    async with serving(tmp_path, "127.0.0.1", clean_env()) as (url, _):
        async with httpx2.AsyncClient() as raw:
            ok = await raw.post(url, json=INITIALIZE, headers=HEADERS)
            assert ok.status_code == 200  # loopback: no token needed
            evil = await raw.post(url, json=INITIALIZE, headers={**HEADERS, "Host": "evil.example"})
            assert evil.status_code == 421
    env = clean_env(MCP_BLE_SERVER__HTTP_TOKEN=TOKEN)
    async with serving(tmp_path, "127.0.0.1", env) as (url, _):
        async with httpx2.AsyncClient() as raw:
            assert (await raw.post(url, json=INITIALIZE, headers=HEADERS)).status_code == 401


def test_config_show_never_prints_the_token(tmp_path):
    config = write_config(tmp_path, FAST)
    proc = subprocess.run(
        [*CLI, "config", "show", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(MCP_BLE_SERVER__HTTP_TOKEN=TOKEN),
    )
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout and "server.http_token" in proc.stdout
