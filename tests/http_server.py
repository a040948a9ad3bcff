"""`mcp-ble serve --transport http` as a subprocess, for the HTTP tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

from tests.helpers import write_config

CLI = [sys.executable, "-m", "mcp_ble.core.cli"]
FAST = '[backends.simulated]\nworld = "demo"\ntime_scale = 0.01\n'


def free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_BLE_")}
    return {**env, **extra}


@contextlib.asynccontextmanager
async def serving(
    tmp_path, host: str, env: dict[str, str], settings: str = ""
) -> AsyncIterator[tuple[str, list[bytes]]]:
    config = write_config(tmp_path, FAST + settings)
    port = free_port(host)
    server = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--config", str(config), "--backend", "simulated",
        "--transport", "http", "--host", host, "--port", str(port),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    err: list[bytes] = []
    try:
        for _ in range(400):
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                break
            except OSError:
                assert server.returncode is None, "the server exited"
                await asyncio.sleep(0.05)
        yield f"http://{host}:{port}/mcp", err
    finally:
        server.terminate()
        _, stderr = await server.communicate()
        err.append(stderr)
