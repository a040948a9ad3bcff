"""Several simulated radios in one world: each hears the devices in its range at an RSSI that
falls with distance, they share the devices and the clock, a link holds a slot of one radio only,
and a radio switched off ends its own links while the others go on."""

from __future__ import annotations

import asyncio
import math

import pytest

from mcp_ble.backends.simulated import SimulatedSettings, _create
from mcp_ble.backends.simulated.backend import SimulatedBackend
from mcp_ble.backends.simulated.radios import SharedWorld, path_loss_db
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleTimeout,
    ConfigError,
    NotConnected,
    OutOfSlots,
)
from mcp_ble.core.models import ScanFilter

WORLD = """
name = "two rooms"
seed = 7
path_loss_exponent = 2.0

[link]
sensitivity_dbm = -95

[[radios]]
name = "hall"
position = [0, 0]
range_m = 12
slots = 2

[[radios]]
name = "lab"
position = [20, 0]
range_m = 12
lost_at_s = 50
back_at_s = 60

[[devices]]
address = "AA:00:00:00:00:01"
name = "near hall"
rssi = -40
rssi_noise_db = 0
position = [1, 0]

[[devices]]
address = "AA:00:00:00:00:02"
name = "near lab"
rssi = -40
rssi_noise_db = 0
position = [19, 0]

[[devices]]
address = "AA:00:00:00:00:03"
name = "between"
rssi = -40
rssi_noise_db = 0
position = [8, 0]

[[devices]]
address = "AA:00:00:00:00:04"
name = "far away"
rssi = -40
position = [10, 30]

[[devices]]
address = "AA:00:00:00:00:05"
name = "everywhere"
rssi = -70
rssi_noise_db = 0
"""
HALL, LAB, BETWEEN, FAR, EVERYWHERE = (f"AA:00:00:00:00:0{i}" for i in (1, 2, 3, 4, 5))


@pytest.fixture
def world_file(tmp_path):
    path = tmp_path / "rooms.toml"
    path.write_text(WORLD, encoding="utf-8")
    return path


def radios(path) -> tuple[SimulatedBackend, SimulatedBackend]:
    world = load_world(str(path))
    shared = SharedWorld.build(world, 0, 517, world.seed, "frozen")
    return (
        SimulatedBackend(world, 0, radio="hall", shared=shared),
        SimulatedBackend(world, 0, radio="lab", shared=shared),
    )


async def heard(backend: SimulatedBackend, seconds: float = 2.0) -> dict[str, int]:
    out: dict[str, int] = {}
    async for adv in backend.scan(seconds, ScanFilter()):
        out[adv.address] = adv.rssi
    return out


async def test_each_radio_hears_its_range_at_rssi_by_distance(world_file):
    hall, lab = radios(world_file)
    await hall.start()
    await lab.start()
    try:
        assert hall.clock is lab.clock and hall.devices is lab.devices
        at_hall, at_lab = await asyncio.gather(heard(hall), heard(lab))
        assert set(at_hall) == {HALL, BETWEEN, EVERYWHERE}
        assert set(at_lab) == {LAB, BETWEEN, EVERYWHERE}
        # -40 dBm at 1 m, 20 log10(d) less at d metres (noise 0)
        assert at_hall[HALL] == at_lab[LAB] == -40
        assert at_hall[BETWEEN] == round(-40 - 20 * math.log10(8)) == -58
        assert at_lab[BETWEEN] == round(-40 - 20 * math.log10(12)) == -62
        assert at_hall[EVERYWHERE] == at_lab[EVERYWHERE] == -70  # no position: no path loss
        assert hall.info().details["radio"] == "hall"
    finally:
        await hall.stop()
        await lab.stop()


async def test_a_link_belongs_to_one_radio_and_holds_its_slot(world_file):
    hall, lab = radios(world_file)
    await hall.start()
    await lab.start()
    try:
        await hall.connect(BETWEEN, 5.0)
        assert hall.links() == [BETWEEN] and lab.links() == []
        # Linked through the hall, the device no longer advertises: the lab neither hears nor
        # connects it, and has no link to it to use.
        assert BETWEEN not in await heard(lab)
        start = lab.now()
        with pytest.raises(BleTimeout, match="no connectable advertisement"):
            await lab.connect(BETWEEN, 3.0)
        assert lab.now() - start == pytest.approx(3.0)
        with pytest.raises(NotConnected):
            await lab.read(BETWEEN, 3)
        await lab.disconnect(BETWEEN)  # not the lab's link: nothing happens
        assert hall.links() == [BETWEEN]
        # The hall has 2 slots; the lab the world's 7.
        await hall.connect(EVERYWHERE, 5.0)
        assert hall.connection_slots() == (2, 2) and lab.connection_slots() == (0, 7)
        with pytest.raises(OutOfSlots, match="2 of 2"):
            await hall.connect(HALL, 5.0)
        await hall.disconnect(BETWEEN)
        with pytest.raises(BleTimeout):  # out of the hall's range: never heard
            await hall.connect(FAR, 1.0)
        await lab.connect(BETWEEN, 5.0)
        assert lab.links() == [BETWEEN]
    finally:
        await hall.stop()
        await lab.stop()


async def test_a_radio_switched_off_ends_its_links_and_the_others_go_on(world_file):
    hall, lab = radios(world_file)
    lost: list[str] = []
    hall.on_disconnect = lambda address, reason: lost.append(address)
    await hall.start()
    await lab.start()
    try:
        await hall.connect(BETWEEN, 5.0)
        await lab.connect(LAB, 5.0)
        hall.switch_off()
        assert hall.health.state == "lost" or hall.health.state.startswith("recover")
        assert "hall" in hall.health.reason and "switched off" in hall.health.reason
        assert hall.links() == [] and lab.links() == [LAB]
        with pytest.raises(BackendUnavailable):
            await hall.connect(HALL, 1.0)
        with pytest.raises(BackendUnavailable):
            await heard(hall)
        with pytest.raises(BackendUnavailable):
            await hall.reacquire()
        await lab.connect(BETWEEN, 5.0)  # the link moves to the radio that is left
        assert sorted(lab.links()) == [LAB, BETWEEN]
        hall.switch_on()
        await hall.reacquire()
        assert HALL in await heard(hall)
    finally:
        await hall.stop()
        await lab.stop()


async def test_a_connect_under_way_fails_when_its_radio_is_switched_off(world_file):
    hall, lab = radios(world_file)
    await hall.start()
    await lab.start()
    try:
        connecting = asyncio.ensure_future(hall.connect(BETWEEN, 5.0))
        await asyncio.sleep(0)  # the connect waits for an advertisement on the clock
        hall.switch_off()
        with pytest.raises(BackendUnavailable):
            await connecting
        assert hall.devices[BETWEEN].link is None and hall.connection_slots() == (0, 2)
        await lab.connect(BETWEEN, 5.0)
    finally:
        await hall.stop()
        await lab.stop()


async def test_a_radio_lost_at_a_set_time_comes_back_at_its_time(world_file):
    hall, lab = radios(world_file)
    await hall.start()
    await lab.start()
    try:
        await lab.connect(LAB, 5.0)
        await lab.clock.sleep_until(50.5)  # lost_at_s = 50
        assert lab.off and lab.links() == [] and "radio 'lab'" in lab.health.reason
        with pytest.raises(BackendUnavailable):
            await lab.reacquire()
        assert not hall.off
        await hall.clock.sleep_until(60.0)
        await lab.reacquire()
        assert not lab.off
        await lab.connect(LAB, 5.0)
    finally:
        await hall.stop()
        await lab.stop()


def settings(path, radio, **more) -> SimulatedSettings:
    return SimulatedSettings(world=str(path), time_scale=0, radio=radio, **more)


async def test_backends_naming_radios_of_one_world_share_it(world_file):
    hall = _create(settings(world_file, "hall"), None)
    lab = _create(settings(world_file, "lab"), None)
    other_seed = _create(settings(world_file, "lab", seed=1), None)
    assert hall.shared is lab.shared and other_seed.shared is not hall.shared
    await hall.start()
    await lab.start()
    await hall.connect(HALL, 5.0)
    assert lab.devices[HALL].link is not None
    await hall.stop()
    await lab.stop()
    again = _create(settings(world_file, "hall"), None)
    assert again.shared is not hall.shared  # every radio stopped: a new world, a new clock
    assert again.devices[HALL].link is None and again.now() == 0
    with pytest.raises(ConfigError, match=r"no radio 'attic'.*hall, lab"):
        _create(settings(world_file, "attic"), None)


def test_path_loss_and_world_rules(tmp_path):
    assert path_loss_db((0, 0), (10, 0), 2.0) == pytest.approx(20.0)
    assert path_loss_db((0, 0), (0.5, 0), 3.0) == 0.0  # within 1 m: the reference RSSI
    assert path_loss_db((0, 0), None, 2.0) == 0.0
    bad = {
        '[[radios]]\nname = "a"\n[[radios]]\nname = "a"\n': "two radios are named a",
        '[[radios]]\nname = "a"\nback_at_s = 3\n': "back_at_s needs a lost_at_s",
        '[[crowds]]\ncount = 2\nfirst_address = "AA:00:00:00:00:01"\narea = [5, 0, 1, 1]\n': (
            "area is"
        ),
    }
    for text, message in bad.items():
        path = tmp_path / "bad.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_world(str(path))
    path = tmp_path / "crowd.toml"
    path.write_text(
        '[[crowds]]\ncount = 50\nfirst_address = "AA:00:00:00:01:00"\narea = [0, 10, 4, 12]\n',
        encoding="utf-8",
    )
    positions = [d.position for d in load_world(str(path)).devices]
    assert all(p is not None and 0 <= p[0] <= 4 and 10 <= p[1] <= 12 for p in positions)
    assert len(set(positions)) == 50
