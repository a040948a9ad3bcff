"""The backend contract: every backend must pass these, over the same world.

Parametrized over ``tests/backends_under_test.py::BACKENDS``. A backend is the radio only, so these
tests talk to it directly, then once through the core (scan filters), as a user would.
"""

from __future__ import annotations

import asyncio

import pytest

from mcp_ble.core.errors import BleError, GattError, NotPermitted
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.values import parse_uuid

from tests.backends_under_test import BACKENDS, CONTRACT_WORLD

SENSOR = "C0:FF:EE:00:00:01"
OTHER = "C0:FF:EE:00:00:02"
BATTERY = parse_uuid("2a19")
RX = parse_uuid("6e400002-b5a3-f393-e0a9-e50e24dcca9e")
TX = parse_uuid("6e400003-b5a3-f393-e0a9-e50e24dcca9e")
LONG = parse_uuid("12345678-1234-5678-1234-56789abcdef1")
READ_ONLY = parse_uuid("12345678-1234-5678-1234-56789abcdef2")
WRITE_ONLY = parse_uuid("12345678-1234-5678-1234-56789abcdef3")
HRM = parse_uuid("2a37")
CCCD = parse_uuid("2902")
USER_DESCRIPTION = parse_uuid("2901")


@pytest.fixture(params=sorted(BACKENDS))
async def but(request):
    async with BACKENDS[request.param](CONTRACT_WORLD) as under_test:
        yield under_test


async def collect(backend, duration_s=0.5, scan_filter=None):
    seen = {}
    async for adv in backend.scan(duration_s, scan_filter or ScanFilter()):
        seen.setdefault(adv.address, adv)
    return seen


async def connected(but, address=SENSOR):
    await collect(but.backend, 0.3)
    await but.backend.connect(address, 10.0)
    services = await but.backend.discover(address)
    chars = {c.uuid: c for s in services for c in s.characteristics}
    return services, chars


async def test_scan_reports_advertising_data(but):
    seen = await collect(but.backend)
    assert {SENSOR, OTHER} <= set(seen)
    adv = seen[SENSOR]
    assert adv.name == "Contract Sensor"
    assert parse_uuid("180f") in adv.service_uuids
    assert adv.manufacturer_data.get(0x0059) == bytes.fromhex("c0ffee")
    assert -127 <= adv.rssi <= 20


async def test_scan_filters_through_the_core(but):
    seen = await collect(but.backend, 0.5, ScanFilter(service_uuid=parse_uuid("180d")))
    matching = [a for a in seen.values() if ScanFilter(service_uuid=parse_uuid("180d")).matches(a)]
    assert [a.address for a in matching] == [OTHER]
    by_name = ScanFilter(name="sensor")
    everything = await collect(but.backend, 0.5)
    assert [a.address for a in everything.values() if by_name.matches(a)] == [SENSOR]
    by_company = ScanFilter(manufacturer_id=0x0059)
    assert [a.address for a in everything.values() if by_company.matches(a)] == [SENSOR]


async def test_connect_discover_and_mtu(but):
    _, chars = await connected(but)
    assert {BATTERY, RX, TX, LONG, READ_ONLY, WRITE_ONLY} <= set(chars)
    assert "read" in chars[BATTERY].properties and "notify" in chars[BATTERY].properties
    assert {"write", "write-without-response"} <= set(chars[RX].properties)
    descriptors = {d.uuid for d in chars[BATTERY].descriptors}
    assert {CCCD, USER_DESCRIPTION} <= descriptors
    handles = [c.handle for c in chars.values()]
    assert len(set(handles)) == len(handles)
    assert 23 <= but.backend.mtu(SENSOR) <= 517
    assert but.backend.mtu(SENSOR) == 247


async def test_read_write_with_and_without_response(but):
    _, chars = await connected(but)
    assert await but.backend.read(SENSOR, chars[BATTERY].handle) == b"\x55"
    assert await but.backend.read(SENSOR, chars[READ_ONLY].handle) == b"read-only"
    await but.backend.write(SENSOR, chars[LONG].handle, b"\x01\x02", True)
    assert await but.backend.read(SENSOR, chars[LONG].handle) == b"\x01\x02"
    await but.backend.write(SENSOR, chars[RX].handle, b"no response", False)


async def test_long_read_and_long_write_of_512_bytes(but):
    _, chars = await connected(but)
    data = bytes(range(256)) * 2
    await but.backend.write(SENSOR, chars[LONG].handle, data, True)
    assert await but.backend.read(SENSOR, chars[LONG].handle) == data


async def test_descriptor_read_and_write(but):
    _, chars = await connected(but)
    desc = {d.uuid: d for d in chars[BATTERY].descriptors}
    text = await but.backend.read_descriptor(SENSOR, desc[USER_DESCRIPTION].handle)
    assert text == b"Main battery"
    await but.backend.write_descriptor(SENSOR, desc[CCCD].handle, b"\x01\x00")
    assert await but.backend.read_descriptor(SENSOR, desc[CCCD].handle) == b"\x01\x00"
    await but.backend.write_descriptor(SENSOR, desc[CCCD].handle, b"\x00\x00")


async def test_notifications_arrive_in_order(but):
    _, chars = await connected(but)
    received: list[bytes] = []
    got_all = asyncio.Event()

    def on_data(data: bytes) -> None:
        received.append(data)
        if len(received) == 3:
            got_all.set()

    await but.backend.start_notify(SENSOR, chars[TX].handle, on_data)
    for i in range(3):
        await but.backend.write(SENSOR, chars[RX].handle, f"msg{i}".encode(), True)
    await asyncio.wait_for(got_all.wait(), 5)
    assert received == [b"msg0", b"msg1", b"msg2"]
    await but.backend.stop_notify(SENSOR, chars[TX].handle)
    await but.backend.write(SENSOR, chars[RX].handle, b"after", True)
    # A marker subscribed and sent afterwards arrives after anything the link still carried.
    later: list[bytes] = []
    marker = asyncio.Event()
    await but.backend.start_notify(
        SENSOR, chars[TX].handle, lambda data: (later.append(data), marker.set())
    )
    await but.backend.write(SENSOR, chars[RX].handle, b"marker", True)
    await asyncio.wait_for(marker.wait(), 5)
    assert received[-1] == b"msg2" and later == [b"marker"]
    await but.backend.stop_notify(SENSOR, chars[TX].handle)


async def test_periodic_notifications_from_the_peripheral(but):
    _, chars = await connected(but, OTHER)
    received: list[bytes] = []
    await but.backend.start_notify(OTHER, chars[HRM].handle, received.append)
    for _ in range(200):
        if len(received) >= 2:
            break
        await asyncio.sleep(0.025)
    assert len(received) >= 2
    assert all(len(v) == 2 and v[0] == 0 for v in received)
    await but.backend.stop_notify(OTHER, chars[HRM].handle)


async def test_gatt_errors_become_our_errors(but):
    _, chars = await connected(but)
    with pytest.raises(GattError) as too_long:
        await but.backend.write(SENSOR, chars[WRITE_ONLY].handle, b"\x01\x02\x03", True)
    assert too_long.value.att_code == 0x0D
    with pytest.raises(BleError) as not_readable:
        await but.backend.read(SENSOR, chars[WRITE_ONLY].handle)
    assert isinstance(not_readable.value, GattError | NotPermitted)
    assert "read" in str(not_readable.value).lower()


async def test_peripheral_initiated_disconnect_is_reported(but):
    await connected(but)
    dropped = asyncio.get_running_loop().create_future()
    but.backend.on_disconnect = lambda address, reason: (
        dropped.done() or dropped.set_result((address, reason))
    )
    result = but.drop_link(SENSOR)
    if asyncio.iscoroutine(result):
        await result
    address, reason = await asyncio.wait_for(dropped, 5)
    assert address == SENSOR
    assert reason


async def test_disconnect_and_reconnect(but):
    _, chars = await connected(but)
    await but.backend.disconnect(SENSOR)
    await but.backend.disconnect(SENSOR)  # idempotent
    await but.backend.connect(SENSOR, 10.0)
    services = await but.backend.discover(SENSOR)
    again = {c.uuid: c.handle for s in services for c in s.characteristics}
    assert again[BATTERY] == chars[BATTERY].handle


async def test_mtu_exchange_lets_one_packet_carry_mtu_minus_3_bytes(but):
    """The negotiated MTU is in force on the link: a write without response of MTU - 3 bytes
    goes through, and the loopback's notification of it arrives in one piece."""
    _, chars = await connected(but)
    payload = but.backend.mtu(SENSOR) - 3
    assert payload == 244
    received: list[bytes] = []
    got = asyncio.Event()

    def on_data(data: bytes) -> None:
        received.append(data)
        got.set()

    await but.backend.start_notify(SENSOR, chars[TX].handle, on_data)
    data = bytes(range(256))[:payload]
    await but.backend.write(SENSOR, chars[RX].handle, data, False)
    await but.backend.write(SENSOR, chars[RX].handle, b"end", False)
    for _ in range(500):  # the marker sent after it ends what the link carried for it
        if received and received[-1] == b"end":
            break
        await asyncio.sleep(0.01)
    assert received == [data, b"end"]
    await but.backend.stop_notify(SENSOR, chars[TX].handle)
