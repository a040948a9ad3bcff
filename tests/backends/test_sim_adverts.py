"""``[[devices.adverts]]``: advertised data that changes over time, on the simulated clock and on
the bumble test bed (real advertising PDUs on a LocalLink), from the same world file; and the test
bed broadcasting every sensor vector, decoded through the bumble backend."""

from __future__ import annotations

import itertools

import pytest
from bumble.link import LocalLink

from mcp_ble.backends.bumble.backend import BumbleBackend
from mcp_ble.backends.simulated.backend import SimulatedBackend
from mcp_ble.backends.simulated.sources import AdvertSchedule
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.app import BleApp
from mcp_ble.core.errors import ConfigError
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.values import parse_uuid

from tests.helpers import load, write_config
from tests.sensor_vectors import VECTORS, settings_toml
from tests.sensor_world import world_text
from tests.testbed.link import opener
from tests.testbed.peripherals import VirtualWorld

SENSOR = "A4:C1:38:00:00:01"
BTHOME = parse_uuid("fcd2")

WORLD = """
name = "adverts"
seed = 3
[[devices]]
address = "A4:C1:38:00:00:01"
name = "Sensor"
adv_interval_ms = 50
manufacturer_data = {{ "0x0059" = "aa" }}
service_data = {{ "181a" = "3408" }}
[[devices.adverts]]
for_s = {first}
service_data = {{ "fcd2" = "4002ca09" }}
[[devices.adverts]]
for_s = {second}
service_data = {{ "fcd2" = "40026608" }}
manufacturer_data = {{ "0x0059" = "bb" }}
"""


def world_file(tmp_path, first: float, second: float):
    path = tmp_path / "adverts.toml"
    path.write_text(WORLD.format(first=first, second=second), encoding="utf-8")
    return path


def test_the_schedule_cycles_and_merges_over_the_fixed_data(tmp_path):
    [device] = load_world(str(world_file(tmp_path, 10, 5))).devices
    schedule = AdvertSchedule(device)
    assert schedule.changes and schedule.period == 15
    first = ({0x0059: b"\xaa"}, {parse_uuid("181a"): b"\x34\x08", BTHOME: b"\x40\x02\xca\x09"})
    second = ({0x0059: b"\xbb"}, {parse_uuid("181a"): b"\x34\x08", BTHOME: b"\x40\x02\x66\x08"})
    for t, expected in ((0, first), (9.99, first), (10, second), (14.9, second), (15, first)):
        assert schedule.at(t) == expected, t
    assert schedule.at(31) is schedule.at(1)  # one entry's advertisements share their data
    assert [schedule.next_change(t) for t in (0, 10, 12, 15, 29.5)] == [10, 15, 15, 25, 30]


def test_a_device_without_adverts_never_changes():
    [device] = [d for d in load_world("demo").devices if d.name == "Beacon"]
    schedule = AdvertSchedule(device)
    assert not schedule.changes and schedule.next_change(5) == float("inf")
    assert schedule.at(0) == schedule.at(1000) == (device.company_data(), {})


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("for_s = 0", "devices[0] (A4:C1:38:00:00:01).adverts[0].for_s"),
        ('manufacturer_data = { "acme" = "01" }', "manufacturer id 'acme' is not a number"),
        ('service_data = { "fcd2" = "zz" }', "'zz' is not valid hex"),
        ('service_data = { "battery" = "01" }', "adverts[0].service_data"),
        ("every_s = 3", "unknown key 'devices[0] (A4:C1:38:00:00:01).adverts[0].every_s'"),
    ],
)
def test_bad_adverts_name_the_key(tmp_path, entry, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(
        f'[[devices]]\naddress = "{SENSOR}"\n[[devices.adverts]]\n{entry}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_world(str(path))
    assert fragment in str(info.value)


async def test_the_simulated_radio_advertises_each_entry_in_its_time(tmp_path):
    backend = SimulatedBackend(load_world(str(world_file(tmp_path, 2, 1))), time_scale=0)
    await backend.start()
    try:
        heard = [
            (backend.now(), adv.service_data[BTHOME], adv.manufacturer_data[0x0059])
            async for adv in backend.scan(6.0, ScanFilter())
        ]
    finally:
        await backend.stop()
    assert len(heard) > 100  # every 50 ms (plus advDelay) for 6 simulated seconds
    for t, payload, company in heard:
        second = 2 <= t % 3 < 3  # advertised within the PDU's air time of its event
        assert payload == (b"\x40\x02\x66\x08" if second else b"\x40\x02\xca\x09"), t
        assert company == (b"\xbb" if second else b"\xaa"), t
    assert {p for _, p, _ in heard} == {b"\x40\x02\xca\x09", b"\x40\x02\x66\x08"}


async def test_the_test_bed_puts_each_entry_on_the_air(tmp_path):
    link = LocalLink()
    world = await VirtualWorld(load_world(str(world_file(tmp_path, 0.3, 0.3))), link).start()
    backend = BumbleBackend("link", open_transport=opener(link))
    await backend.start()
    try:
        payloads = [
            adv.service_data.get(BTHOME)
            async for adv in backend.scan(1.5, ScanFilter())
            if adv.address == SENSOR
        ]
    finally:
        await backend.stop()
        await world.stop()
    # Real advertising PDUs: both payloads were heard, and each in runs (not interleaved).
    assert set(payloads) == {b"\x40\x02\xca\x09", b"\x40\x02\x66\x08"}
    changes = sum(1 for a, b in itertools.pairwise(payloads) if a != b)
    assert 1 <= changes <= 8, payloads


class TestBedRadio:
    """The production bumble backend on the test bed's link, registered as a plugin would."""

    link: LocalLink | None = None

    @hookimpl
    def mcp_ble_register_backends(self, register):
        register(
            "bumble-testbed",
            lambda settings, app: BumbleBackend("link", open_transport=opener(TestBedRadio.link)),
        )


async def test_the_test_bed_broadcasts_every_sensor_vector(tmp_path):
    """Each vector's payload goes on the air as real (extended) advertising PDUs, comes back
    through bumble's HCI host and the bumble backend, and the decoder plugins read it."""
    world_file = tmp_path / "sensors.toml"
    world_file.write_text(world_text(), encoding="utf-8")
    TestBedRadio.link = LocalLink()
    world = await VirtualWorld(load_world(str(world_file)), TestBedRadio.link).start()
    try:
        config = write_config(tmp_path, 'backend = "bumble-testbed"\n' + settings_toml())
        loaded, catalog = load(config, extra_plugins={"testbed": TestBedRadio})
        async with BleApp.create(loaded, catalog) as app:
            await app.scan(1.0, ScanFilter())
            for vector in VECTORS:
                got = {r.ident: (r.measurement, r.value, r.unit) for r, _ in
                       app.sensors.latest(vector.address)}  # fmt: skip
                assert got == vector.expected, vector.id
    finally:
        await world.stop()
