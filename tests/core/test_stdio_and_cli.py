"""The real transports and commands: `mcp-ble serve` over stdio as a subprocess, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.helpers import write_config

CLI = [sys.executable, "-m", "mcp_ble.core.cli"]
FAST = '[backends.simulated]\nworld = "demo"\ntime_scale = 0.01\n[server]\nscan_duration_s = 2\n'


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


async def test_stdio_subprocess_session(tmp_path):
    config = write_config(tmp_path, FAST)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ble.core.cli", "serve", "--config", str(config)],
        env=dict(os.environ),
    )
    for mode in ("auto", "legacy"):
        async with Client(params, mode=mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "ble_scan" in tools and "ble_notifications" in tools
            scan = await client.call_tool("ble_scan", {"name": "thermo"})
            assert not scan.is_error
            [device] = scan.structured_content["devices"]
            connect = await client.call_tool("ble_connect", {"address": device["address"]})
            assert connect.structured_content["mtu"] == 23
            read = await client.call_tool(
                "ble_read", {"address": device["address"], "characteristic": "2a6f"}
            )
            assert "humidity_percent" in read.structured_content
            bad = await client.call_tool("ble_read", {"address": "nope", "characteristic": "2a6f"})
            assert bad.is_error and "is not a Bluetooth address" in bad.content[0].text
            status = await client.call_tool("ble_status", {})
            assert status.structured_content["connections"] == 1


def test_scan_command_prints_a_table(tmp_path):
    config = write_config(tmp_path, FAST)
    proc = run_cli("scan", "--config", str(config), "--duration", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("7 devices in") and "[SIMULATED]" in lines[0]
    assert lines[1].split() == ["ADDRESS", "RSSI", "NAME", "SERVICES", "MANUFACTURER"]
    assert any("HRM Strap" in line and "Heart Rate" in line for line in lines)
    proc = run_cli("scan", "--config", str(config), "--duration", "2", "--service", "180d")
    assert proc.stdout.splitlines()[0].startswith("1 devices")


def test_plugins_command_lists_hooks(tmp_path):
    proc = run_cli("plugins")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "enabled" in rows["retry"] and "retry_delay" in rows["retry"]
    assert "enabled" in rows["metrics"] and "register_metrics" in rows["metrics"]
    assert "backend in use" in rows["backend-auto"]  # owner of the shipped "auto" backend


def test_backend_that_cannot_start_exits_2_without_traceback(tmp_path):
    config = write_config(tmp_path, "")
    proc = subprocess.run(
        [*CLI, "serve", "--config", str(config), "--backend", "bleak"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "bleak" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_backend_flag_exits_2(tmp_path):
    proc = run_cli("scan", "--backend", "radio9000")
    assert proc.returncode == 2
    assert "'radio9000' is not a known backend" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_and_no_command():
    assert run_cli("--help").returncode == 0
    proc = run_cli()
    assert proc.returncode == 0 and "serve" in proc.stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_streamable_http_transport(tmp_path):
    import asyncio

    config = write_config(tmp_path, FAST)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--config", str(config), "--backend", "simulated",
        "--transport", "http", "--port", str(port),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):  # wait until it listens (loopback only)
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        for mode in ("auto", "legacy"):
            async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode) as client:
                scan = await client.call_tool("ble_scan", {"name": "HRM"})
                assert [d["name"] for d in scan.structured_content["devices"]] == ["HRM Strap"]
                status = await client.call_tool("ble_status", {})
                assert status.structured_content["simulated"] is True
    finally:
        server.terminate()
        await server.wait()


def test_demo_runs_a_real_client_session(tmp_path):
    config = write_config(tmp_path, FAST)
    proc = run_cli("demo", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("mcp-ble demo: SIMULATED devices.")
    assert "< 16 tools: ble_scan" in out
    # the decoders the demo turns on, which a plain serve with the shipped settings has not
    assert "Sensor decoders turned on for this demo (--plugins): bthome, ibeacon, govee." in out
    # sensor readings from advertisements, in one call, before anything connects
    sensors = out.index("> ble_sensors(measurement='temperature', name='living room')")
    assert out.index("> ble_connect(") > sensors
    answer = out[sensors:].splitlines()[1]
    # the thermometer cycles three BTHome payloads every 20 simulated seconds, and this clock runs
    # 100x faster than the wall: which one is on the air when the agent asks depends on timing
    heard = (f'{{"temperature":"{t}"}}' for t in ("21.5 °C", "25.06 °C", "22.33 °C"))
    assert any(f'"name":"Living Room Thermo","readings":{r}' in answer for r in heard), answer
    assert '"listened_s":' in answer  # it listened for itself, until the thermometer spoke
    assert ' {"hex":"57","battery_level_percent":87}' in out
    # write_policy "confirm": the person is asked, on screen, before the UART write
    assert "[server asks the person] Allow writing 18 bytes" in out
    assert 'text "hello from mcp-ble" to characteristic' in out and "[person] approve: yes" in out
    assert '"heart_rate_bpm":' in out
    assert '"text":"hello from mcp-ble"' in out
    assert "ERROR (as the agent sees it): attribute_not_found:" in out
    assert "has no characteristic 2a99" in out
    # every step prints the call and then one line of what came back (the person's approval,
    # indented, may come between)
    lines = [line for line in out.splitlines() if not line.startswith("  [")]
    calls = [i for i, line in enumerate(lines) if line.startswith("> ")]
    assert len(calls) >= 20
    assert all(lines[i + 1].startswith("< ") for i in calls)
    assert "ble_connection_success_total 3.0" in out


def test_a_reader_that_closes_stdout_ends_the_command_quietly(tmp_path):
    """`mcp-ble config show | head`: the reader goes away before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [*CLI, "config", "show", "--config", str(write_config(tmp_path, FAST))],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1 and done.stderr == "", done.stderr
