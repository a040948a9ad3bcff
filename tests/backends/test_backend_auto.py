"""``backend = "auto"`` (the shipped default): bleak when an adapter answers, otherwise the
simulated demo world, announced on stderr and flagged simulated everywhere."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from bumble.link import LocalLink

from mcp_ble.backends.auto.backend import AutoBackend
from mcp_ble.backends.bleak.backend import BleakBackend
from mcp_ble.backends.bleak.errors import DBUS_SOCKET
from mcp_ble.backends.simulated.backend import SimulatedBackend
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.backend import Backend
from mcp_ble.core.errors import BackendUnavailable
from mcp_ble.core.models import BackendInfo, ScanFilter

from tests.backends_under_test import CONTRACT_WORLD
from tests.testbed.bleak_backend import BumbleCentral, bleak_backends
from tests.testbed.peripherals import VirtualWorld


class NoRadio(BleakBackend):
    async def start(self) -> None:
        raise BackendUnavailable("no adapter here", "plug one in")


def simulated() -> Backend:
    return SimulatedBackend(load_world(str(CONTRACT_WORLD)), time_scale=0.01)


async def test_falls_back_to_the_simulated_world_and_says_so():
    stderr = io.StringIO()
    auto = AutoBackend([("bleak", NoRadio), ("simulated", simulated)], {"simulated"}, stderr)
    drops: list[tuple[str, str]] = []
    auto.on_disconnect = lambda address, reason: drops.append((address, reason))
    await auto.start()
    try:
        info = auto.info()
        assert info.simulated is True and info.name == "simulated"
        assert "no adapter here" in info.details["selected_by"]
        warning = stderr.getvalue()
        assert "SIMULATED" in warning and "no adapter here" in warning
        assert "mcp-ble doctor" in warning
        seen = {a.address async for a in auto.scan(0.3, ScanFilter())}
        assert "C0:FF:EE:00:00:01" in seen
        await auto.connect("C0:FF:EE:00:00:01", 5)
        assert auto.mtu("C0:FF:EE:00:00:01") == 247
        auto.active.drop_link("C0:FF:EE:00:00:01")  # the simulated peripheral ends the link
        assert drops and drops[0][0] == "C0:FF:EE:00:00:01"
    finally:
        await auto.stop()


async def test_uses_bleak_when_an_adapter_answers():
    link = LocalLink()
    world = await VirtualWorld(load_world(str(CONTRACT_WORLD)), link).start()
    central = await BumbleCentral(link).start()
    scanner, client = bleak_backends(central)
    stderr = io.StringIO()
    real = lambda: BleakBackend(scanner_backend=scanner, client_backend=client)  # noqa: E731
    auto = AutoBackend([("bleak", real), ("simulated", simulated)], {"simulated"}, stderr)
    await auto.start()
    try:
        info = auto.info()
        assert (info.name, info.simulated) == ("bleak", False)
        assert info.details["selected_by"] == "auto: bleak started"
        assert stderr.getvalue() == ""
    finally:
        await auto.stop()
        await central.stop()
        await world.stop()


def test_info_before_start_is_honest():
    assert AutoBackend([("bleak", NoRadio)]).info() == BackendInfo(
        "auto", details={"state": "not started"}
    )


@pytest.mark.skipif(DBUS_SOCKET.exists(), reason="this machine may have a real adapter")
def test_shipped_default_on_a_machine_without_radio_scans_simulated_devices():
    env = {**os.environ, "MCP_BLE_BACKENDS__SIMULATED__TIME_SCALE": "0.01"}
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_ble.core.cli", "scan", "--duration", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SIMULATED" in proc.stderr and "D-Bus" in proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["simulated"] is True and result["devices"]
