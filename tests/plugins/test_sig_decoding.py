"""The ``sig`` decoder plugin over MCP: SIG characteristics read, listed with read_values,
notified and shown in resources, decoded with their units; what it cannot parse is hex.

One world (built here) holds a device whose characteristics carry the vectors below, and one
MCP client session on the simulated backend reads them all. Each vector names its source:

- ``bsig:<file>``: the vector of bluetooth-sig's own test (RonanB96/bluetooth-sig-python,
  tests/gatt/characteristics/<file>), bytes and expected value as given there;
- ``GSS <section>``: built here from the Bluetooth SIG's GATT Specification Supplement (GSS)
  definition of the characteristic. The IEEE 11073 FLOAT/SFLOAT values (GSS §2.4 medfloat32,
  medfloat16) come from the spec, not from bluetooth-sig's tests: those encode the exponent
  with a bias (its 120 mmHg is 0x8078, which is 120e-8 by IEEE 11073-20601), a mistake the
  plugin corrects (plugins/sig/ieee11073.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp.client import Client

from mcp_ble.core.server import build_server

from tests.helpers import make_app, ok

ADDRESS = "5E:5E:00:00:00:01"
SERVICE = "5e5e0000-0000-4000-8000-00000000aaaa"
UNKNOWN = "5e5e0001-0000-4000-8000-00000000aaaa"

# (characteristic, value hex, decoded fields, source)
VECTORS: list[tuple[str, str, dict[str, Any], str]] = [
    ("2a19", "32", {"battery_level_percent": 50}, "bsig:test_battery_level.py"),
    ("2a07", "04", {"tx_power_level_dbm": 4}, "bsig:test_tx_power_level.py"),
    ("2a6d", "02760f00", {"pressure_pa": 101325.0}, "bsig:test_pressure.py"),
    ("2a6e", "6408", {"temperature_c": 21.48}, "bsig:test_temperature.py"),
    ("2a6f", "8813", {"humidity_percent": 50.0}, "bsig:test_humidity.py"),
    ("2a12", "01", {"time_accuracy_s": 0.125}, "bsig:test_time_accuracy.py"),
    ("2a2c", "2823", {"magnetic_declination_deg": 90.0}, "bsig:test_magnetic_declination.py"),
    ("2a6c", "50c300", {"elevation_m": 500.0}, "bsig:test_elevation.py"),
    ("2a70", "f401", {"true_wind_speed_m_per_s": 5.0}, "bsig:test_true_wind_speed.py"),
    ("2a71", "2823", {"true_wind_direction_deg": 90.0}, "bsig:test_true_wind_direction.py"),
    ("2a72", "6400", {"apparent_wind_speed_m_per_s": 1.0}, "bsig:test_apparent_wind_speed.py"),
    (
        "2a73",
        "2823",
        {"apparent_wind_direction_deg": 90.0},
        "bsig:test_apparent_wind_direction.py",
    ),
    (
        "2a75",
        "010000",
        {"pollen_concentration_grains_per_m3": 1.0},
        "bsig:test_pollen_concentration.py",
    ),
    ("2a76", "03", {"uv_index": 3}, "bsig:test_uv_index.py"),
    ("2a77", "6400", {"irradiance_w_per_m2": 10.0}, "bsig:test_irradiance.py"),
    ("2a78", "0a00", {"rainfall_mm": 10.0}, "bsig:test_rainfall.py"),
    ("2a7a", "1b", {"heat_index_c": 27}, "bsig:test_heat_index.py"),
    ("2a7b", "0a", {"dew_point_c": 10}, "bsig:test_dew_point.py"),
    (
        "2a7e",
        "3c",
        {"aerobic_heart_rate_lower_limit_bpm": 60},
        "bsig:test_aerobic_heart_rate_lower_limit.py",
    ),
    ("2a80", "19", {"age_yr": 25}, "bsig:test_age.py"),
    # a unit the key names in a word is not appended again (not year_yr, day_d)
    ("2a85", "d0070101", {"year": 2000, "month": 1, "day": 1}, "bsig:test_date_of_birth.py"),
    ("2b16", "0a00", {"time_second_16": 10.0}, "GSS Time Second 16: 10 s"),
    # a duration is shown in seconds whatever unit it is counted in (10 hours, 10 decihours)
    ("2b14", "0a0000", {"time_hour_24_s": 36000.0}, "GSS Time Hour 24: uint24 hours"),
    ("2b12", "0a", {"time_decihour_8_s": 3600.0}, "GSS Time Decihour 8: 0.1 h steps"),
    ("2a8d", "96", {"heart_rate_max_bpm": 150}, "bsig:test_heart_rate_max.py"),
    ("2a92", "3c", {"resting_heart_rate_bpm": 60}, "bsig:test_resting_heart_rate.py"),
    ("2a98", "1027", {"weight_kg": 50.0}, "bsig:test_weight.py"),
    ("2aee", "9600", {"electric_current_a": 1.5}, "bsig:test_electric_current.py"),
    ("2af2", "640000", {"energy_kwh": 100}, "bsig:test_energy.py"),
    ("2afb", "102700", {"illuminance_lx": 100.0}, "bsig:test_illuminance.py"),
    ("2afc", "6400", {"luminous_efficacy_lm_per_w": 10.0}, "bsig:test_luminous_efficacy.py"),
    ("2aff", "6400", {"luminous_flux_lm": 100}, "bsig:test_luminous_flux.py"),
    ("2b01", "6400", {"luminous_intensity_cd": 100}, "bsig:test_luminous_intensity.py"),
    ("2b02", "e803", {"mass_flow_g_per_s": 1000}, "bsig:test_mass_flow.py"),
    ("2b04", "c8", {"percentage_8_percent": 100.0}, "bsig:test_percentage_8.py"),
    ("2b05", "640000", {"power_w": 10.0}, "bsig:test_power.py"),
    ("2b0d", "32", {"temperature_8_c": 25.0}, "bsig:test_temperature_8.py"),
    ("2b18", "c000", {"voltage_v": 3.0}, "bsig:test_voltage.py"),
    ("2b1b", "e803", {"volume_flow_l_per_s": 1.0}, "bsig:test_volume_flow.py"),
    ("2b50", "e803", {"caloric_intake_kcal": 1000}, "bsig:test_caloric_intake.py"),
    ("2b8c", "3412", {"co2_concentration_ppm": 4660}, "bsig:test_co2_concentration.py"),
    ("2be4", "32", {"noise_db_spl": 50}, "bsig:test_noise.py"),
    ("2be7", "0004", {"voc_concentration_ppb": 1024}, "bsig:test_voc_concentration.py"),
    ("2be8", "3200", {"voltage_frequency_hz": 50}, "bsig:test_voltage_frequency.py"),
    ("2c06", "e8030000", {"acceleration_m_per_s2": 1.0}, "bsig:test_acceleration.py"),
    ("2c07", "e8030000", {"force_n": 1.0}, "bsig:test_force.py"),
    ("2c09", "e8030000", {"rotational_speed_rpm": 1000.0}, "bsig:test_rotational_speed.py"),
    ("2c0b", "e8030000", {"torque_n_m": 10.0}, "bsig:test_torque.py"),
    ("2c1b", "64", {"humidity_8_percent": 50.0}, "bsig:test_humidity_8.py"),
    (
        "2a29",
        "4170706c6520496e632e",
        {"text": "Apple Inc."},
        "bsig:test_manufacturer_name_string.py",
    ),
    ("2a00", "4d7920446576696365", {"text": "My Device"}, "bsig:test_device_name.py"),
    # structures, built from the GSS definitions
    (
        "2a37",
        "16480004",
        {"heart_rate_bpm": 72, "sensor_contact": True, "rr_intervals_s": [1.0]},
        "GSS 3.113 Heart Rate Measurement: flags 0x16 (uint8 value, contact detected, "
        "RR present), 72 bpm, RR 1024/1024 s",
    ),
    (
        "2a1c",
        "006c0100ff",
        {"temperature_c": 36.4},
        "GSS 3.216 Temperature Measurement: flags 0 (Celsius), medfloat32 0xFF00016C = 364e-1",
    ),
    (
        "2a1c",
        "01da0300ff",
        {"temperature_f": 98.6},
        "GSS 3.216 Temperature Measurement: flags 1 (Fahrenheit), 0xFF0003DA = 986e-1",
    ),
    (
        "2a35",
        "00790051006a00",
        {"systolic_mmhg": 121.0, "diastolic_mmhg": 81.0, "mean_arterial_pressure_mmhg": 106.0},
        "GSS 3.31 Blood Pressure Measurement: flags 0 (mmHg), medfloat16 121, 81, 106",
    ),
    (
        "2a9d",
        "01102701",
        {"weight_lb": 100.0, "measurement_units": "imperial"},
        "GSS 3.247 Weight Measurement: flags 1 (imperial), 10000 x 0.01 lb",
    ),
    ("2a38", "01", {"body_sensor_location": "chest"}, "GSS 3.34 Body Sensor Location: 1 = Chest"),
    (
        "2a37",
        "19480000010004",
        {"heart_rate_bpm": 72, "energy_expended_kj": 256, "rr_intervals_s": [1.0]},
        "Heart Rate Service 1.0 §3.1.1: flags 0x19 (uint16 value, Energy Expended, RR), "
        "72 bpm, 256 kJ (kilojoules, §3.1.1.3), RR 1024/1024 s",
    ),
    (
        "2a5b",
        "0301000000000801000004",
        {
            "cumulative_wheel_revolutions": 1,
            "last_wheel_event_time_s": 2.0,
            "cumulative_crank_revolutions": 1,
            "last_crank_event_time_s": 1.0,
        },
        "CSC Service 1.0 §3.1.1: flags 3 (wheel, crank), 1 rev, 2048/1024 s, 1 rev, 1024/1024 s",
    ),
    (
        "2a0f",
        "0402",
        {
            "timezone": "UTC+01:00",
            "timezone_offset_hours": 1.0,
            "dst_offset": "Half an hour Daylight Time",
            "dst_offset_hours": 0.5,
            "total_offset_hours": 1.5,
        },
        "GSS Local Time Information: Time Zone 4 (15-minute steps), DST Offset 2 (half an hour)",
    ),
    (
        "2a01",
        "c103",
        {"category": "Human Interface Device", "subcategory": "Keyboard"},
        "Assigned Numbers §2.6: Appearance 0x03C1 = category 0x00F (HID), subcategory 1",
    ),
    (
        "2a04",
        "0600100000006400",
        {"min_interval_ms": 7.5, "max_interval_ms": 20.0, "latency": 0, "timeout_ms": 1000},
        "Core 5.4 Vol 3 Part C §12.3: intervals 6 and 16 x 1.25 ms, latency 0, timeout 100 x 10 ms",
    ),
    (
        "2a9f",
        "01",
        {"opcode": "register_new_user"},
        "GSS User Control Point: op code 1, no parameter",
    ),
    ("2a0e", "04", {"time_zone": "UTC+01:00"}, "GSS Time Zone: 4 x 15 minutes"),
    (
        "2a6e",
        "0080",
        {"temperature_c": "not known"},
        "GSS Temperature: 0x8000 = value is not known",
    ),
    (
        "2a6f",
        "ffff",
        {"humidity_percent": "not known"},
        "GSS Humidity: 0xFFFF = value is not known",
    ),
    (
        "2ae0",
        "640040",
        {"current_a": 1.0, "sensing_duration_s": 1.0},
        "GSS Average Current: 100 x 0.01 A, Time Exponential 8 0x40 = 1.1^0 s",
    ),
    (
        "2ae1",
        "c00040",
        {"voltage_v": 3.0, "sensing_duration_s": 1.0},
        "GSS Average Voltage: 192 x 1/64 V, Time Exponential 8 0x40 = 1.1^0 s",
    ),
    (
        "2b11",
        "e803d007b80ba00f40",
        {
            "average_c": 10.0,
            "standard_deviation_c": 20.0,
            "minimum_c": 30.0,
            "maximum_c": 40.0,
            "sensing_duration_s": 1.0,
        },
        "GSS Temperature Statistics: 4 Temperature values (0.01 °C) 1000, 2000, 3000, 4000, "
        "Time Exponential 8 0x40 = 1 s",
    ),
    (
        "2af1",
        "6400c8002c01900140",
        {
            "average_a": 1.0,
            "standard_deviation_a": 2.0,
            "minimum_a": 3.0,
            "maximum_a": 4.0,
            "sensing_duration_s": 1.0,
        },
        "GSS Electric Current Statistics: 4 Electric Current values (0.01 A) 100-400, "
        "Time Exponential 8 0x40 = 1 s",
    ),
]

#: Notified by the world's generator: flags 0x06 (uint8 value, contact detected; GSS 3.113),
#: then a bpm counting up from 60.
NOTIFIED = "2a37"


def world_file(tmp_path: Any) -> str:
    lines = [
        'name = "sig-vectors"',
        "seed = 1",
        "[[devices]]",
        f'address = "{ADDRESS}"',
        'name = "SIG vectors"',
        "adv_interval_ms = 20",
        "[[devices.services]]",
        f'uuid = "{SERVICE}"',
    ]
    for uuid, value, _, _ in VECTORS:
        lines += ["[[devices.services.characteristics]]", f'uuid = "{uuid}"', f'value = "{value}"']
    lines += [
        # a value the decoder cannot parse (one byte of a two-byte Temperature), and an
        # unknown characteristic: both shown as bytes, neither an error
        "[[devices.services.characteristics]]",
        'uuid = "2a6e"',
        'value = "00"',
        "[[devices.services.characteristics]]",
        f'uuid = "{UNKNOWN}"',
        'value = "0102"',
        "[[devices.services]]",
        'uuid = "180d"',
        "[[devices.services.characteristics]]",
        f'uuid = "{NOTIFIED}"',
        'properties = ["notify"]',
        'generator = { kind = "counter", start = 60, step = 1, max = 200 }',
        'prefix = "06"',
        "notify_hz = 20",
    ]
    path = tmp_path / "sig_vectors.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_path_factory.mktemp("sig")


@pytest.fixture(scope="module")
def session(tmp_module: Any) -> Any:
    """Every result the tests check, from one MCP session against one server."""

    async def run() -> dict[str, Any]:
        app = make_app(tmp_module, 'plugins = ["sig"]', world=world_file(tmp_module))
        async with Client(build_server(app)) as client:
            await ok(client, "ble_scan", duration_s=0.5)
            await ok(client, "ble_connect", address=ADDRESS)
            tree = await ok(client, "ble_services", address=ADDRESS, read_values=True)
            chars = [c for s in tree["services"] for c in s["characteristics"]]
            reads = [
                await ok(client, "ble_read", address=ADDRESS, characteristic=f"#{c['handle']}")
                for c in chars
                if "read" in c["properties"]
            ]
            # the vector's 2a37 is also in the first service: the notifying one by handle
            notified = f"#{chars[-1]['handle']}"
            sub = await ok(client, "ble_subscribe", address=ADDRESS, characteristic=notified)
            notes = await ok(
                client,
                "ble_notifications",
                address=ADDRESS,
                characteristic=notified,
                max_items=2,
                wait_s=5,
            )
            # each "resource updated" event says new values are buffered; the first may be
            # for the one drained above
            async with client.listen(resource_subscriptions=[sub["resource"]]) as stream:
                async with asyncio.timeout(10):
                    async for _ in stream:
                        resource = await client.read_resource(sub["resource"])
                        if json.loads(resource.contents[0].text)["latest"]:
                            break
            return {
                "tree": tree,
                "chars": chars,
                "reads": reads,
                "notifications": notes["notifications"],
                "resource": json.loads(resource.contents[0].text),
            }

    return asyncio.run(run())


def test_there_are_at_least_40_characteristics():
    assert len({uuid for uuid, *_ in VECTORS}) >= 40
    assert all(source for *_, source in VECTORS)


@pytest.mark.parametrize(
    ("index", "uuid", "value", "fields"),
    [(i, u, v, f) for i, (u, v, f, _) in enumerate(VECTORS)],
    ids=[f"{u}-{s.split(':')[-1].split(' ')[0]}" for u, _, _, s in VECTORS],
)
def test_read_decodes_values_and_units(session, index, uuid, value, fields):
    read = session["reads"][index]
    assert read.pop("uuid") == uuid  # named by handle: the result says which it was
    shown = {k: v for k, v in read.items() if k != "hex"}
    assert shown == fields
    # the bytes are shown unless the value is text that holds them exactly
    assert read.get("hex", bytes.fromhex(value).hex()) == value
    if "text" not in fields:
        assert read["hex"] == value


def test_what_cannot_be_parsed_is_hex_without_an_error(session):
    malformed, unknown = session["reads"][len(VECTORS) :]
    assert malformed == {"hex": "00", "uuid": "2a6e"}
    assert unknown == {"hex": "0102", "uuid": UNKNOWN}


def test_services_with_read_values_are_decoded_and_named(session):
    chars = session["chars"]
    by_index = chars[: len(VECTORS)]
    for char, (uuid, value, fields, _) in zip(by_index, VECTORS, strict=True):
        assert char["uuid"] == uuid
        shown = {k: v for k, v in char["value"].items() if k != "hex"}
        assert shown == fields, uuid
        assert char["value"].get("hex", value) == value
    names = {c["uuid"]: c.get("name") for c in chars}
    assert names["2a19"] == "Battery Level"
    assert names["2a37"] == "Heart Rate Measurement"
    assert names[UNKNOWN] is None  # no decoder knows it: no name, no error
    services = [s.get("name") for s in session["tree"]["services"]]
    assert services == [None, "Heart Rate"]


def test_notifications_and_the_resource_are_decoded(session):
    notes = session["notifications"]
    latest = session["resource"]["latest"]
    assert notes and latest and session["resource"]["uuid"] == "2a37"
    for note in [*notes, *latest]:
        assert note["hex"][:2] == "06"
        bpm = int(note["hex"][2:], 16)
        assert 60 <= bpm <= 200
        assert {k: v for k, v in note.items() if k not in ("ms", "hex")} == {
            "heart_rate_bpm": bpm,
            "sensor_contact": True,
        }
