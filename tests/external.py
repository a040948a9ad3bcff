"""Tools from outside Python that tests drive: promtool, and the npm packages under tests/clients/
(the MCP Inspector CLI, the TypeScript SDK, the conformance suite, and a Node 22 runtime).

``make test`` installs them (.ci/install-tools). When one is missing the test skips with the
reason, except under ``CI=true``, where a missing tool fails the test: CI must not pass by
running less."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
CLIENTS = TESTS / "clients"
NODE_BIN = CLIENTS / "node_modules" / ".bin"
INSTALL_HINT = "run 'make test' (it installs them with .ci/install-tools)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str) -> None:
    """Skip, or under CI=true fail, because ``what`` is not installed."""
    message = f"{what} is not installed; {INSTALL_HINT}"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def require_command(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(name)
    assert path is not None
    return path


def node_env(home: Path) -> dict[str, str]:
    """Environment for the npm tools: the project's Node 22 first on PATH (the tools' scripts
    start with ``#!/usr/bin/env node``), and HOME in a temporary folder (the Inspector writes
    ~/.mcp-inspector/)."""
    node = NODE_BIN / "node"
    if not node.exists():
        missing("Node 22 from npm (tests/clients/node_modules/.bin/node)")
    version = subprocess.run(
        [str(node), "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 22:
        missing(f"Node 22 or newer (found {version})")
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["NO_COLOR"] = "1"
    return env


def require_npm_bin(name: str) -> Path:
    path = NODE_BIN / name
    if not path.exists():
        missing(f"the npm tool '{name}' (tests/clients/node_modules)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_command(*args: str) -> list[str]:
    """``mcp-ble serve`` on the simulated backend's demo world, from this interpreter's install."""
    return [sys.executable, "-m", "mcp_ble.core.cli", "serve", "--backend", "simulated", *args]


@contextlib.contextmanager
def http_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """``mcp-ble serve --transport http`` on a free loopback port; yields the MCP URL."""
    port = free_port()
    proc = subprocess.Popen(
        serve_command("--transport", "http", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mcp-ble serve exited: {proc.stderr.read() if proc.stderr else ''}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("mcp-ble serve did not open its HTTP port within 60 s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
