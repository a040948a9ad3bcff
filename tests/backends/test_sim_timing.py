"""The simulated radio against the theory module: the same physics, computed two ways.

The simulator places every packet in connection events (with loss, buffers, fragmentation,
request/response turns); the theory module has the closed forms. All on the virtual clock, so
these durations are simulated and independent of the machine's speed.
"""

from __future__ import annotations

import asyncio
import itertools
import tomllib
from contextlib import asynccontextmanager

import pytest

from mcp_ble.backends.simulated import theory
from mcp_ble.backends.simulated.backend import SimulatedBackend
from mcp_ble.backends.simulated.world import World
from mcp_ble.core.errors import BleTimeout, ConnectionFailed, OutOfSlots
from mcp_ble.core.models import ScanFilter

DEV = "AA:00:00:00:00:01"
OTHER = "AA:00:00:00:00:02"


def world(
    link: str = "", device: str = "", extra: str = "", adv: float = 100, mtu: int = 247
) -> World:
    text = f"""
seed = 3
[link]
{link}
[[devices]]
address = "{DEV}"
adv_interval_ms = {adv}
mtu = {mtu}
{device}
[[devices.services]]
uuid = "fff0"
[[devices.services.characteristics]]
uuid = "fff1"
properties = ["read", "write", "write-without-response"]
value = "00"
[[devices.services.characteristics]]
uuid = "fff2"
properties = ["notify"]
generator = {{ kind = "constant", value = 1 }}
prefix = "{"ab" * 243}"
notify_hz = 10000
{extra}
"""
    return World.model_validate(tomllib.loads(text))


@asynccontextmanager
async def backend(w: World, **kwargs):
    b = SimulatedBackend(w, time_scale=0, **kwargs)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


async def handles(b: SimulatedBackend, address: str = DEV) -> dict[str, int]:
    services = await b.discover(address)
    return {c.uuid[4:8]: c.handle for s in services for c in s.characteristics}


async def stream(b: SimulatedBackend, nbytes: int) -> float:
    """Write ``nbytes`` without response in MTU - 3 pieces; seconds until the last arrived."""
    h = (await handles(b))["fff1"]
    payload = b.mtu(DEV) - 3
    start = b.now()
    for offset in range(0, nbytes, payload):
        await b.write(DEV, h, bytes(min(payload, nbytes - offset)), False)
    return await b.drain(DEV) - start


async def test_64k_without_response_at_2m_15ms_6_packets_lands_on_the_formula():
    w = world('connection_interval_ms = 15\nphy = "2M"\npackets_per_event = 6')
    async with backend(w) as b:
        await b.connect(DEV, 10)
        assert b.mtu(DEV) == 247
        took = await stream(b, 64 * 1024)
    formula = 64 * 1024 / (6 * (247 - 3) / 0.015)  # packets_per_event x (MTU - 3) / interval
    assert took == pytest.approx(formula, rel=0.05)


@pytest.mark.parametrize(
    "link",
    [
        'connection_interval_ms = 30\nphy = "1M"\npackets_per_event = 4',
        'connection_interval_ms = 7.5\nphy = "1M"\npackets_per_event = 6',  # air time bound
        "connection_interval_ms = 30\ndata_length = 27\npackets_per_event = 8",  # no DLE
        'connection_interval_ms = 45\nphy = "coded"\ndata_length = 251',  # spans events
        'connection_interval_ms = 15\nphy = "2M"\npackets_per_event = 6\nloss_rate = 0.1',
        'connection_interval_ms = 15\nphy = "2M"\npackets_per_event = 6\ntx_buffers = 3',
    ],
    ids=["1M", "1M-airtime", "no-DLE", "coded", "lossy", "buffers"],
)
async def test_write_without_response_throughput(link):
    async with backend(world(link)) as b:
        await b.connect(DEV, 10)
        params = b.link_params(DEV)
        took = await stream(b, 48 * 1024)
    assert 48 * 1024 / took == pytest.approx(theory.stream_throughput(params), rel=0.05)


async def test_mtu_is_capped_by_device_world_and_adapter():
    async with backend(world("max_mtu = 185")) as b:
        await b.connect(DEV, 10)
        assert b.mtu(DEV) == 185
    async with backend(world(), max_mtu=100) as b:
        await b.connect(DEV, 10)
        assert b.mtu(DEV) == 100
    async with backend(world(mtu=65)) as b:
        await b.connect(DEV, 10)
        assert b.mtu(DEV) == 65


@pytest.mark.parametrize("size", [20, 244, 300, 512])
async def test_write_with_response_and_long_writes(size):
    async with backend(world('connection_interval_ms = 15\nphy = "2M"')) as b:
        await b.connect(DEV, 10)
        h = (await handles(b))["fff1"]
        params = b.link_params(DEV)
        await b.write(DEV, h, bytes(size), True)  # aligns us to the connection events
        start = b.now()
        for _ in range(10):
            await b.write(DEV, h, bytes([size % 256]) * size, True)
        per_write = (b.now() - start) / 10
        assert await b.read(DEV, h) == bytes([size % 256]) * size
    assert per_write == pytest.approx(theory.write_with_response_time(params, size), rel=0.01)


@pytest.mark.parametrize("size", [1, 246, 300, 512])
async def test_reads_and_long_reads(size):
    async with backend(world("connection_interval_ms = 30")) as b:
        await b.connect(DEV, 10)
        h = (await handles(b))["fff1"]
        params = b.link_params(DEV)
        await b.write(DEV, h, bytes(size), True)
        start = b.now()
        for _ in range(10):
            assert len(await b.read(DEV, h)) == size
        per_read = (b.now() - start) / 10
    assert per_read == pytest.approx(theory.read_time(params, size), rel=0.01)


async def test_notifications_are_bounded_by_the_link_and_dropped_at_the_peripheral():
    async with backend(
        world('connection_interval_ms = 15\nphy = "2M"\npackets_per_event = 6')
    ) as b:
        await b.connect(DEV, 10)
        h = (await handles(b))["fff2"]
        received: list[bytes] = []
        await b.start_notify(DEV, h, received.append)
        start = b.now()
        await b.clock.sleep(2.0)
        rate = sum(map(len, received)) / (b.now() - start)
        params = b.link_params(DEV)
        assert len(received[0]) == 244
    assert rate == pytest.approx(theory.stream_throughput(params), rel=0.05)
    # 10 000 generated per second, ~400 fit the link: the peripheral's buffers overflow.
    assert b.stats.radio.notifications_dropped > 15_000


async def test_indications_wait_for_each_confirmation():
    extra = """
[[devices.services.characteristics]]
uuid = "fff3"
properties = ["indicate"]
generator = { kind = "counter", start = 0, step = 1 }
notify_hz = 1000
"""
    async with backend(world("connection_interval_ms = 30", extra=extra)) as b:
        await b.connect(DEV, 10)
        h = (await handles(b))["fff3"]
        received: list[bytes] = []
        await b.start_notify(DEV, h, received.append)
        await b.clock.sleep(3.0)
    # One indication, then its confirmation in the next event: one per two intervals.
    assert len(received) == pytest.approx(3.0 / 0.060, abs=2)


async def test_requests_on_one_link_are_sequential():
    async with backend(world("connection_interval_ms = 30")) as b:
        await b.connect(DEV, 10)
        h = (await handles(b))["fff1"]
        start = b.now()
        ends: list[float] = []

        async def read() -> None:
            await b.read(DEV, h)
            ends.append(b.now() - start)

        await asyncio.gather(read(), read(), read())
    gaps = [later - earlier for earlier, later in itertools.pairwise(ends)]
    assert gaps == pytest.approx([0.060, 0.060], abs=1e-6)


async def test_discovery_time_follows_the_duty_cycle():
    # Equal advertising and scan intervals with a 30 % window: misses come in long runs.
    w = world("scan_interval_ms = 100\nscan_window_ms = 30", "rssi_noise_db = 0")
    found = []
    async with backend(w) as b:
        for _ in range(400):
            start = b.now()
            async for _adv in b.scan(30.0, ScanFilter()):
                found.append(b.now() - start)
                break
    expected = theory.discovery_time(0.100, 0.100, 0.030)
    assert sum(found) / len(found) == pytest.approx(expected, rel=0.08)
    # With continuous scanning the device is heard within one advertising interval.
    async with backend(world("", "rssi_noise_db = 0")) as b:
        for _ in range(50):
            start = b.now()
            async for adv in b.scan(30.0, ScanFilter()):
                assert b.now() - start <= 0.100 + theory.ADV_PDU_S + 1e-9
                assert adv.address == DEV
                break


async def test_connection_time_matches_the_ideal():
    w = world("connection_interval_ms = 30", adv=200)
    took = []
    async with backend(w) as b:
        for _ in range(300):
            start = b.now()
            await b.connect(DEV, 10)
            took.append(b.now() - start)
            await b.disconnect(DEV)
        params = b.link_params(DEV)
    ideal = theory.connection_time(0.200, params)
    assert sum(took) / len(took) == pytest.approx(ideal, rel=0.05)
    assert min(took) > 0.030  # at least the MTU exchange's two events


async def test_a_device_that_stops_advertising_cannot_be_connected():
    w = world("supervision_timeout_ms = 500", "[devices.faults]\nout_of_range_at_s = 2")
    lost: list[tuple[str, str]] = []
    async with backend(w) as b:
        b.on_disconnect = lambda address, reason: lost.append((address, reason))
        await b.connect(DEV, 1)
        h = (await handles(b))["fff1"]
        await b.read(DEV, h)
        await b.clock.sleep_until(2.3)
        await b.read(DEV, h)  # out of range, but within the supervision timeout
        await b.clock.sleep_until(2.48)
        with pytest.raises(ConnectionFailed, match="lost during the read: supervision timeout"):
            await b.read(DEV, h)  # needs two events: the link drops at 2.5 s first
        assert b.now() == pytest.approx(2.5)
        assert lost == [(DEV, "supervision timeout: the device went out of range")]
        heard = [adv async for adv in b.scan(1.0, ScanFilter())]
        assert heard == []
        start = b.now()
        with pytest.raises(BleTimeout, match="no connectable advertisement"):
            await b.connect(DEV, 3.0)
        assert b.now() - start == pytest.approx(3.0)


async def test_rssi_drifts_until_the_device_is_out_of_range():
    w = world("sensitivity_dbm = -100", "rssi = -60\nrssi_drift_db_per_s = -10\nrssi_noise_db = 1")
    async with backend(w) as b:
        early = [adv.rssi async for adv in b.scan(1.0, ScanFilter())]
        await b.clock.sleep_until(2.0)
        middle = [adv.rssi async for adv in b.scan(1.0, ScanFilter())]
        await b.clock.sleep_until(5.0)
        late = [adv.rssi async for adv in b.scan(1.0, ScanFilter())]
    assert early and middle and not late
    assert sum(early) / len(early) == pytest.approx(-65, abs=2)
    assert sum(middle) / len(middle) == pytest.approx(-85, abs=2)


async def test_adapter_slots_limit_connections():
    extra = f"""
[[devices]]
address = "{OTHER}"
adv_interval_ms = 50
"""
    async with backend(world("adapter_slots = 1", extra=extra)) as b:
        await b.connect(DEV, 5)
        with pytest.raises(OutOfSlots, match="1 of 1 in use"):
            await b.connect(OTHER, 5)
        await b.disconnect(DEV)
        await b.connect(OTHER, 5)


async def test_connected_devices_stop_advertising():
    async with backend(world()) as b:
        before = {adv.address async for adv in b.scan(0.5, ScanFilter())}
        await b.connect(DEV, 5)
        during = {adv.address async for adv in b.scan(0.5, ScanFilter())}
    assert before == {DEV} and during == set()


async def test_scan_duration_and_advertising_rate_are_simulated_time():
    async with backend(world("", "rssi_noise_db = 0", adv=20)) as b:
        heard = [adv async for adv in b.scan(60.0, ScanFilter())]
        assert b.now() == pytest.approx(60.0)
    # One advertisement per 20 ms + U(0, 10 ms) advDelay: 60 s / 25 ms on average.
    assert len(heard) == pytest.approx(60 / 0.025, rel=0.03)
