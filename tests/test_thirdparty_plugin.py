"""A real third-party plugin: ``tests/thirdparty/replay`` is its own distribution (pyproject.toml,
entry points), built and installed with pip, then found and run by mcp-ble like any other.

It adds a backend (``replay``: plays back a recorded session), a hook implementation and a
settings section (``scan_budget``), using only the documented plugin surface."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from mcp_ble.core.app import BleApp
from mcp_ble.core.models import ScanFilter

from tests.core.test_plugin_api import SURFACE, app_uses
from tests.helpers import load, write_config

PACKAGE = Path(__file__).parent / "thirdparty" / "replay"
RECORDING = PACKAGE / "session.json"
THERMO = "AA:BB:CC:00:00:01"
#: What a plugin or backend may import from mcp-ble: the documented contract.
DOCUMENTED = {
    "mcp_ble.core.hookspecs",
    "mcp_ble.core.plugin_api",
    "mcp_ble.core.plans",
    "mcp_ble.core.traits",
    "mcp_ble.core.backend",
    "mcp_ble.core.models",
    "mcp_ble.core.errors",
}


@pytest.fixture(scope="session")
def replay_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the distribution into a folder of its own (the checkout is copied first:
    setuptools writes build/ and *.egg-info next to pyproject.toml)."""
    root = tmp_path_factory.mktemp("replay")
    source = shutil.copytree(PACKAGE, root / "source")
    site = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return site


@pytest.fixture
def installed(replay_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(replay_site))
    yield replay_site
    for name in [m for m in sys.modules if m.startswith("mcp_ble_replay")]:
        del sys.modules[name]


def settings(tmp_path: Path, budget: float = 0.5) -> Path:
    return write_config(
        tmp_path,
        f'backend = "replay"\nplugins = ["scan_budget", "sig"]\n'
        f"[scan_budget]\nmax_scan_s = {budget}\n"
        f'[backends.replay]\nrecording = "{RECORDING}"\nspeed = 4\n',
    )


def test_the_distribution_is_found_through_its_entry_points(installed):
    dist = distribution("mcp-ble-replay")
    assert Path(str(dist.locate_file("mcp_ble_replay"))).parent == installed
    _, catalog = load()
    assert catalog.origins["scan_budget"].endswith("from mcp-ble-replay")
    assert catalog.backends["replay"].plugin == "backend-replay"
    assert catalog.backends["replay"].traits.simulated
    assert catalog.section_owner["scan_budget"] == "scan_budget"


async def test_its_hook_and_settings_run_in_process(installed, tmp_path):
    loaded, catalog = load(settings(tmp_path, budget=0.4))
    app = BleApp.create(loaded, catalog)
    async with app:
        outcome = await app.scan(3.0, ScanFilter())
        await app.connect(THERMO)
    assert outcome.plan.notes == ["scan_budget: capped at 0.4 s"]
    # Recorded seconds, on the replay's real-time clock at speed 4: a stall of the machine
    # lengthens the scan, so the bound is half the 3 s asked for, which the cap must prevent.
    assert 0.4 <= outcome.duration_s < 1.5
    assert dict(app.plugins)["scan_budget"].links_seen == [1]


async def test_replay_end_to_end_through_mcp(installed, tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ble.core.cli", "serve", "--config", str(settings(tmp_path))],
        env={**os.environ, "PYTHONPATH": str(installed)},
    )
    async with Client(params) as client:
        scan = await client.call_tool("ble_scan", {"duration_s": 3})
        assert not scan.is_error, scan.content[0].text
        found = scan.structured_content
        assert [d["name"] for d in found["devices"]] == ["Recorded Thermo", "Recorded Lock"]
        assert found["notes"] == ["scan_budget: capped at 0.5 s"]
        assert 0.5 <= found["duration_s"] < 1.5  # capped: not the 3 s asked for
        connect = await client.call_tool("ble_connect", {"address": THERMO})
        assert connect.structured_content["mtu"] == 185
        reads = []
        for _ in range(3):
            read = await client.call_tool("ble_read", {"address": THERMO, "characteristic": "2a6e"})
            reads.append(read.structured_content["temperature_c"])
        assert reads == [23.14, 23.24, 23.24]  # the recorded values; the last one repeats
        sub = await client.call_tool("ble_subscribe", {"address": THERMO, "characteristic": "2a6e"})
        assert not sub.is_error, sub.content[0].text
        values: list[str] = []
        for _ in range(100):
            got = await client.call_tool(
                "ble_notifications", {"address": THERMO, "characteristic": "2a6e"}
            )
            values += [n["hex"] for n in got.structured_content["notifications"]]
            if len(values) >= 2:
                break
        assert values == ["e803", "e903"]
        status = (await client.call_tool("ble_status", {})).structured_content
        assert status["backend"]["name"] == "replay" and status["simulated"] is True
        origins = {p["name"]: p.get("origin", "built-in") for p in status["plugins"]}
        assert origins["scan_budget"].endswith("from mcp-ble-replay")


def test_the_plugin_keeps_to_the_documented_surface(installed):
    outside = []
    for path in sorted((installed / "mcp_ble_replay").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        outside += [f"{path.name}: app.{a}" for _, a in app_uses(tree) if a not in SURFACE]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mcp_ble"):
                if node.module not in DOCUMENTED:
                    outside.append(f"{path.name}: imports {node.module}")
    assert outside == []
