"""The bumble backend beyond the contract: transport failures explained and bounded, pairing,
disconnect reasons, and the advertising data codec both sides of the test bed use."""

from __future__ import annotations

import asyncio
import time

import pytest
from bumble.link import LocalLink

from mcp_ble.backends.bumble.advertising import decode, encode
from mcp_ble.backends.bumble.backend import BumbleBackend
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.errors import BackendUnavailable, DeviceNotFound
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.values import parse_uuid

from tests.backends_under_test import CONTRACT_WORLD
from tests.testbed.link import opener
from tests.testbed.peripherals import VirtualWorld

SENSOR = "C0:FF:EE:00:00:01"


async def refused(name: str) -> None:
    raise ConnectionRefusedError(111, "Connection refused")


async def hangs(name: str) -> None:
    await asyncio.sleep(3600)


@pytest.mark.parametrize(
    ("transport", "open_transport", "expected"),
    [
        ("tcp-client:127.0.0.1:9", refused, "check host and port"),
        ("usb:0", hangs, "did not answer within 0.2 s"),
        ("serial:/dev/ttyUSB9,1000000", refused, "baud rate"),
    ],
)
async def test_a_transport_that_cannot_open_fails_fast_with_a_fix(
    transport, open_transport, expected
):
    backend = BumbleBackend(transport, start_timeout_s=0.2, open_transport=open_transport)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as raised:
        await backend.start()
    # The deadline under test is 0.2 s; the open it bounds would hang for an hour.
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert message.startswith("The bumble backend cannot start")
    assert transport in message and expected.lower() in message.lower()


async def test_the_real_transport_opener_is_used_by_default():
    # Nothing listens on the discard port here: bumble's own TCP transport is refused.
    backend = BumbleBackend("tcp-client:127.0.0.1:9", start_timeout_s=5)
    with pytest.raises(BackendUnavailable, match=r"tcp-client:127\.0\.0\.1:9"):
        await backend.start()


async def test_pairing_reasons_and_unknown_devices():
    link = LocalLink()
    world = await VirtualWorld(load_world(str(CONTRACT_WORLD)), link).start()
    backend = BumbleBackend("link", open_transport=opener(link))
    await backend.start()
    try:
        with pytest.raises(DeviceNotFound):
            await backend.connect(SENSOR, 2)  # not heard yet: the address type is unknown
        async for _ in backend.scan(0.2, ScanFilter()):
            pass
        await backend.connect(SENSOR, 5)
        await backend.pair(SENSOR)
        [peripheral_side] = world.peripherals[SENSOR].device.connections.values()
        assert peripheral_side.is_encrypted
        dropped = asyncio.get_running_loop().create_future()
        backend.on_disconnect = lambda address, reason: dropped.set_result(reason)
        await world.drop_link(SENSOR)
        assert await asyncio.wait_for(dropped, 5) == "remote user terminated connection (0x13)"
    finally:
        await backend.stop()
        await world.stop()


def test_advertising_data_round_trips():
    data = encode(
        name="Thermo",
        service_uuids=[parse_uuid("180f"), parse_uuid("6e400001-b5a3-f393-e0a9-e50e24dcca9e")],
        manufacturer_data={0x0059: b"\x01\x02"},
        service_data={parse_uuid("181a"): b"\x10"},
        tx_power=-4,
    )
    adv = decode("C0:FF:EE:00:00:09", -60, data)
    assert adv.name == "Thermo" and adv.tx_power == -4
    assert adv.service_uuids == (
        parse_uuid("180f"),
        parse_uuid("6e400001-b5a3-f393-e0a9-e50e24dcca9e"),
    )
    assert adv.manufacturer_data == {0x0059: b"\x01\x02"}
    assert adv.service_data == {parse_uuid("181a"): b"\x10"}
    truncated = decode("C0:FF:EE:00:00:09", -60, data + b"\x09\x09ab")
    assert truncated.name == "Thermo"  # a cut-off trailing structure is ignored
