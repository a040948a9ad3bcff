"""Listing the plugins imports no plugin's library: every installed plugin's module is imported
to list it (``mcp-ble plugins``, and every ``mcp-ble serve`` start), so a decoder's parser
library (xiaomi-ble alone brings aiohttp, about 0.3 s), the esphome backend's aioesphomeapi and
habluetooth, bumble and bluetooth-sig are imported only when an app that enables them starts or
first uses them. Checked in a fresh interpreter (this one has imported them for other tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.sensor_vectors import PLUGINS

ROOT = Path(__file__).resolve().parents[2]

#: Libraries no plugin may import just by being installed.
HEAVY = [
    "bthome_ble",
    "xiaomi_ble",
    "govee_ble",
    "inkbird_ble",
    "qingping_ble",
    "ruuvitag_ble",
    "sensorpush_ble",
    "thermopro_ble",
    "bluemaestro_ble",
    "ibeacon_ble",
    "sensor_state_data",
    "habluetooth",
    "aiohttp",
    "aioesphomeapi",
    "bleak_esphome",
    "bluetooth_sig",
    "bumble",
]

SCRIPT = """
import asyncio, contextlib, io, json, sys, tempfile
from pathlib import Path
from mcp_ble.core.cli import main

heavy = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()) as listed:
    code = main(["plugins"])
after_listing = [m for m in heavy if m in sys.modules]

from tests.helpers import make_app

async def start() -> list[str]:
    toml = 'plugins = ["xiaomi", "ibeacon"]'
    async with make_app(Path(tempfile.mkdtemp()), toml):
        return [m for m in ("xiaomi_ble", "ibeacon_ble", "bthome_ble") if m in sys.modules]

print(json.dumps({"code": code, "listed": listed.getvalue(), "after_listing": after_listing,
                  "after_start": asyncio.run(start())}))
"""


def test_listing_plugins_imports_no_plugin_library() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.splitlines()[-1])
    assert got["code"] == 0
    # every decoder and the esphome backend were listed as available, not broken
    for name in [*PLUGINS, "esphome"]:
        assert name in got["listed"], name
    assert "BROKEN" not in got["listed"]
    assert got["after_listing"] == []
    # an app enabling xiaomi and ibeacon imports their libraries when it starts, not bthome's
    assert got["after_start"] == ["xiaomi_ble", "ibeacon_ble"]
