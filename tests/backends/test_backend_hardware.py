"""Against real hardware: skipped unless MCP_BLE_HARDWARE=1.

    MCP_BLE_HARDWARE=1 pytest -m hardware                    # bleak: adapter answers, a scan
    BLE_HARDWARE_DEVICE=AA:BB:CC:DD:EE:FF MCP_BLE_HARDWARE=1 pytest -m hardware
                                                             # ... and connect, discover, read
    BLE_HARDWARE_BUMBLE=usb:0 MCP_BLE_HARDWARE=1 pytest -m hardware   # bumble on a dongle
    BLE_HARDWARE_ADAPTER=hci1 ...                             # bleak on another adapter

The device named by BLE_HARDWARE_DEVICE must be advertising and connectable. (These variables do
not start with MCP_BLE_ so the settings loader never mistakes them for settings.)
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from mcp_ble.core.backend import Backend
from mcp_ble.core.models import ScanFilter

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(
        os.environ.get("MCP_BLE_HARDWARE") != "1", reason="set MCP_BLE_HARDWARE=1 to run"
    ),
]
DEVICE = os.environ.get("BLE_HARDWARE_DEVICE")
BUMBLE_TRANSPORT = os.environ.get("BLE_HARDWARE_BUMBLE")


async def exercise(backend: Backend) -> None:
    await backend.start()
    try:
        heard = {}
        async for adv in backend.scan(5.0, ScanFilter()):
            heard.setdefault(adv.address, adv)
        assert heard, "no advertisement in 5 s: is anything advertising nearby?"
        for adv in heard.values():
            assert -127 <= adv.rssi <= 20
        if DEVICE is None:
            return
        assert DEVICE in heard, f"{DEVICE} did not advertise during the scan"
        await backend.connect(DEVICE, 20)
        assert 23 <= backend.mtu(DEVICE) <= 517
        services = await backend.discover(DEVICE)
        readable = [c for s in services for c in s.characteristics if "read" in c.properties]
        assert readable, "the device has no readable characteristic"
        value = await backend.read(DEVICE, readable[0].handle)
        assert len(value) <= 512
        await backend.disconnect(DEVICE)
    finally:
        await backend.stop()


async def test_bleak_on_the_system_adapter():
    from mcp_ble.backends.bleak.backend import BleakBackend

    await exercise(BleakBackend(os.environ.get("BLE_HARDWARE_ADAPTER")))


@pytest.mark.skipif(importlib.util.find_spec("simplepyble") is None, reason="extra not installed")
async def test_simplepyble_on_the_system_adapter():
    import simplepyble

    from mcp_ble.backends.simplepyble.backend import SimplepybleBackend

    await exercise(SimplepybleBackend(simplepyble))


@pytest.mark.skipif(BUMBLE_TRANSPORT is None, reason="set BLE_HARDWARE_BUMBLE=usb:0 (or another)")
async def test_bumble_on_an_hci_controller():
    from mcp_ble.backends.bumble.backend import BumbleBackend

    await exercise(BumbleBackend(BUMBLE_TRANSPORT or ""))
