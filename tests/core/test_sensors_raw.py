"""The raw hex a reading stands for is left out of ``ble_scan`` and ``ble_devices``, over MCP.

One session on a small world: a BTHome sensor that also sends manufacturer data no decoder reads,
an encrypted BTHome sensor whose key the settings lack, a sensor read by a third-party decoder
that does not name its payload entry, an iBeacon, a Govee hygrometer, an Eddystone beacon, and a
sensor whose service data turns to bytes no decoder reads after 2 s. The clock is the frozen
virtual one, so the tests follow one timeline in file order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.client import Client

from mcp_ble.core.app import BleApp
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import Advertisement, SensorReading
from mcp_ble.core.server import build_server

from tests.helpers import load, ok, write_config
from tests.sensor_vectors import BTHOME, VECTORS, settings_toml
from tests.sensor_world import PAYLOAD_A, device_table

MIXED = "A0:00:00:00:00:01"
LOCKED = "A0:00:00:00:00:02"
THIRD = "A0:00:00:00:00:03"
TURNING = "A0:00:00:00:00:04"
LEVEL_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NORDIC = 0x0059
APPLE = 0x004C
BY_ID = {v.id: v for v in VECTORS}


class LevelDecoder:
    """A third-party decoder as the hook's contract allowed before readings named their
    payload entry: it does not say where its value came from."""

    @hookimpl
    def mcp_ble_decode_advertisement(
        self, advertisement: Advertisement
    ) -> list[SensorReading] | None:
        data = advertisement.service_data.get(LEVEL_UUID)
        return [SensorReading("level", data[0], "%", "level")] if data else None


def world() -> str:
    plain, locked = BY_ID["bthome_v2"], BY_ID["bthome_v2_encrypted"]
    tables = [device_table(BY_ID[name]) for name in ("ibeacon", "govee_h5075", "eddystone_tlm")]
    tables += [
        f'[[devices]]\naddress = "{MIXED}"\nname = "Mixed"\nadv_interval_ms = 100\n'
        f'service_data = {{ "fcd2" = "{plain.service_data[BTHOME].hex()}" }}\n'
        f'manufacturer_data = {{ "0x{NORDIC:04x}" = "a1b2c3" }}',
        f'[[devices]]\naddress = "{LOCKED}"\nname = "Locked"\nadv_interval_ms = 100\n'
        f'service_data = {{ "fcd2" = "{locked.service_data[BTHOME].hex()}" }}',
        f'[[devices]]\naddress = "{THIRD}"\nname = "Third"\nadv_interval_ms = 100\n'
        'service_data = { "fff0" = "2a" }',
        f'[[devices]]\naddress = "{TURNING}"\nname = "Turning"\nadv_interval_ms = 100\n'
        f'[[devices.adverts]]\nfor_s = 2\nservice_data = {{ "fcd2" = "{PAYLOAD_A}" }}\n'
        '[[devices.adverts]]\nfor_s = 60\nservice_data = { "fcd2" = "ff" }',
    ]
    return 'name = "raw"\nseed = 3\n\n' + "\n\n".join(tables) + "\n"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    folder = tmp_path_factory.mktemp("raw")
    (folder / "raw.toml").write_text(world(), encoding="utf-8")
    toml = settings_toml(["bthome", "ibeacon", "govee", "eddystone", "level"])
    text = (
        f'backend = "simulated"\n{toml}\n[backends.simulated]\nworld = "{folder / "raw.toml"}"\n'
        "time_scale = 0\n"
    )
    loaded, catalog = load(write_config(folder, text), extra_plugins={"level": LevelDecoder})
    async with Client(build_server(BleApp.create(loaded, catalog))) as connected:
        yield connected


def companies(device: dict[str, Any]) -> dict[int, str]:
    """The device's manufacturer data by company id (labels are 'id name')."""
    shown = device.get("manufacturer_data") or {}
    return {int(label.split(" ")[0]): data for label, data in shown.items()}


def check_listing(devices: dict[str, dict[str, Any]]) -> None:
    locked = BY_ID["bthome_v2_encrypted"]
    mixed = devices[MIXED]
    assert mixed["readings"] == {"temperature": "25.06 °C", "humidity": "50.55 %"}
    assert "service_data" not in mixed  # the readings stand for the BTHome entry
    assert companies(mixed) == {NORDIC: "a1b2c3"}  # no decoder read this one: it stays
    # No key: the only reading is the encryption state, so the bytes stay for the agent.
    assert devices[LOCKED]["readings"] == {"encryption": "no key"}
    assert devices[LOCKED]["service_data"] == {"fcd2": locked.service_data[BTHOME].hex()}
    # A decoder that does not name its payload entry leaves the hex shown (the safe default).
    assert devices[THIRD]["readings"] == {"level": "42 %"}
    assert devices[THIRD]["service_data"] == {"fff0": "2a"}
    for name, field in (
        ("ibeacon", "manufacturer_data"),
        ("govee_h5075", "manufacturer_data"),
        ("eddystone_tlm", "service_data"),
    ):
        device = devices[BY_ID[name].address]
        assert device["readings"] and field not in device, (name, device)


async def test_scan_leaves_out_the_hex_readings_stand_for(client: Client) -> None:
    scan = await ok(client, "ble_scan", duration_s=1.5)
    devices = {d["address"]: d for d in scan["devices"]}
    check_listing(devices)
    assert devices[TURNING]["readings"] == {"temperature": "25.06 °C", "humidity": "50.55 %"}
    assert "service_data" not in devices[TURNING]


async def test_devices_leave_it_out_too(client: Client) -> None:
    listed = await ok(client, "ble_devices")
    check_listing({d["address"]: d for d in listed["devices"]})


async def test_a_scan_filtering_on_an_entry_shows_its_hex(client: Client) -> None:
    beacons = await ok(client, "ble_scan", duration_s=0.3, manufacturer_id=APPLE)
    [beacon] = beacons["devices"]
    vector = BY_ID["ibeacon"]
    assert beacon["readings"] and companies(beacon)[APPLE] == vector.manufacturer_data[APPLE].hex()
    bthome = await ok(client, "ble_scan", duration_s=0.3, service_uuid="fcd2")
    mixed = next(d for d in bthome["devices"] if d["address"] == MIXED)
    assert mixed["service_data"] == {"fcd2": BY_ID["bthome_v2"].service_data[BTHOME].hex()}
    assert companies(mixed) == {NORDIC: "a1b2c3"}


async def test_bytes_no_decoder_read_are_shown_again(client: Client) -> None:
    # TURNING's service data holds bytes no decoder reads from 2 s on: its earlier readings
    # no longer stand for the entry, so its hex is back.
    scan = await ok(client, "ble_scan", duration_s=1.0, name="turning")
    [turning] = scan["devices"]
    assert turning["service_data"] == {"fcd2": "ff"}
