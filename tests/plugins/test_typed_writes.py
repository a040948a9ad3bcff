"""Typed writes over MCP: ``ble_write`` with ``value`` as an object, encoded by the ``sig``
decoder plugin (bluetooth-sig), sent to a simulated peripheral and read back as bytes.

Every vector names its source: the ``valid_test_data`` of bluetooth-sig's own tests
(github.com/RonanB96/bluetooth-sig-python, ``tests/gatt/characteristics/test_<name>.py``), or
the SIG's GATT Specification Supplement where the library's tests disagree with it. One MCP
session (module scope) serves the vectors and the wrong shapes; the policy cases need their own
server settings and get one short session each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import mcp.types as types
import pytest
from mcp.client import Client

from mcp_ble.core.server import build_server

from tests.helpers import error, failure, make_app, ok

DEVICE = "C0:DE:00:00:00:5A"

#: (characteristic, typed value, bytes expected on the peripheral, source of the vector)
LIB = "bluetooth-sig tests/gatt/characteristics/"
VECTORS: list[tuple[str, dict[str, Any], str, str]] = [
    ("2a06", {"value": "high_alert"}, "02", f"{LIB}test_alert_level.py 'High Alert'"),
    ("2a6e", {"value": 21.48}, "6408", f"{LIB}test_temperature.py '21.48°C'"),
    ("2a6e", {"value": -10.0}, "18fc", f"{LIB}test_temperature.py '-10°C'"),
    ("2a08", {"value": "2019-12-25T10:30:45"}, "e3070c190a1e2d", f"{LIB}test_date_time.py"),
    (
        "2a2b",
        {
            "date_time": "2025-01-15T14:30:45",
            "day_of_week": "wednesday",
            "fractions256": 33,
            "adjust_reason": ["manual_time_update"],
        },
        "e907010f0e1e2d032101",
        f"{LIB}test_current_time.py '2025-01-15 14:30:45.128 Wednesday'",
    ),
    (
        "2a2b",
        {
            "date_time": "2025-12-31T23:59:59",
            "day_of_week": "SUNDAY",
            "fractions256": 255,
            "adjust_reason": ["external_reference_time_update", "change_of_time_zone"],
        },
        "e9070c1f173b3b07ff06",
        f"{LIB}test_current_time.py 'Sunday with adjust reasons'",
    ),
    (
        "2a2b",
        {"date_time": "2025-01-01T00:00:00", "day_of_week": "monday", "fractions256": 0},
        "e9070101000000010000",
        f"{LIB}test_current_time.py '2025-01-01 00:00:00 Monday' (no adjust reason set)",
    ),
    ("2a85", {"year": 2000, "month": 1, "day": 1}, "d0070101", f"{LIB}test_date_of_birth.py"),
    ("2a8a", {"value": "John"}, "4a6f686e", f"{LIB}test_first_name.py"),
    ("2a8c", {"value": "female"}, "01", f"{LIB}test_gender.py 'Female'"),
    ("2a80", {"value": 25}, "19", f"{LIB}test_age.py '25 years old'"),
    ("2b14", {"value": 36000}, "0a0000", "GSS Time Hour 24: 10 hours, given in seconds"),
    ("2b16", {"time_second_16": 10}, "0a00", "GSS Time Second 16: 10 s, as a read shows it"),
    ("2a98", {"value": 75.0}, "983a", f"{LIB}test_weight.py '75.0 kg'"),
    ("2a8e", {"value": 175.0}, "5c44", f"{LIB}test_height.py '175.0 cm'"),
    ("2a8d", {"value": 180}, "b4", f"{LIB}test_heart_rate_max.py '180 bpm'"),
    ("2a21", {"value": 3600}, "100e", f"{LIB}test_measurement_interval.py '1 hour'"),
    (
        "2a39",
        {"value": "reset_energy_expended"},
        "01",
        f"{LIB}test_heart_rate_control_point.py",
    ),
    (
        "2a1c",
        {"temperature": 36.4, "unit": "celsius", "flags": []},
        "006c0100ff",
        "GSS, Temperature Measurement: flags 0 (Celsius, no timestamp, no type), then the "
        "medfloat32 (GSS 2.4, IEEE 11073-20601 FLOAT) 36.4 = mantissa 364, exponent -1",
    ),
    (
        "2a1c",
        {"temperature_f": 98.6},  # as a read shows it: the unit in the key, no flags
        "01da0300ff",
        "GSS, Temperature Measurement: flags 1 (Fahrenheit), medfloat32 98.6 = 986e-1",
    ),
    ("2a1c", {"temperature_c": 36.4}, "006c0100ff", "GSS, Temperature Measurement: flags 0"),
    (
        "2a1c",
        {"temperature_c": 36.4, "timestamp": "2024-01-02T03:04:05"},
        "026c0100ffe8070102030405",
        "GSS, Temperature Measurement: flags bit 1 (Time Stamp present), then Date Time",
    ),
    ("2a06", {"value": "High Alert"}, "02", f"{LIB}test_alert_level.py 'High Alert' as shown"),
    # Flags derived from the fields given (Heart Rate Service 1.0 §3.1.1.1: bit 0 uint16 format,
    # bit 1 contact detected, bit 2 contact supported, bit 3 Energy Expended, bit 4 RR-Interval)
    ("2a37", {"heart_rate_bpm": 73, "sensor_contact": "detected"}, "0649", "HRS §3.1.1.1"),
    ("2a37", {"heart_rate_bpm": 73, "sensor_contact": True}, "0649", "HRS §3.1.1.1, as read"),
    ("2a37", {"heart_rate_bpm": 73, "sensor_contact": False}, "0449", "HRS §3.1.1.1"),
    ("2a37", {"heart_rate_bpm": 300}, "012c01", "HRS §3.1.1.2: over 255 takes the uint16 format"),
    (
        "2a37",
        {
            "heart_rate_bpm": 73,
            "sensor_contact": "not_supported",
            "energy_expended_kj": 256,
            "rr_intervals_s": [1.0],
        },
        "184900010004",
        "HRS §3.1.1.3 Energy Expended uint16 kJ, §3.1.1.4 RR-Interval uint16 1/1024 s",
    ),
    (
        "2a37",
        {"heart_rate_bpm": 73, "sensor_contact": True, "energy_expended_kj": 256},
        "0e490001",
        "HRS §3.1.1.1: flags 0x0e",
    ),
    (
        "2a9d",
        {"weight_kg": 35.0},
        "00581b",
        "GSS, Weight Measurement: flags 0 (SI), weight uint16 in 0.005 kg = 7000",
    ),
    (
        "2a9d",
        {"weight_lb": 70.0},
        "01581b",
        "GSS, Weight Measurement: flags bit 0 (Imperial), weight uint16 in 0.01 lb = 7000",
    ),
    (
        "2a5b",
        {"cumulative_wheel_revolutions": 1000, "last_wheel_event_time_s": 2.0},
        "01e80300000008",
        "GSS, CSC Measurement: flags bit 0 (wheel data), uint32 1000, uint16 2048/1024 s",
    ),
    # Blood Pressure: GSS, Blood Pressure Measurement: flags bit 0 kPa, bit 1 Time Stamp, bit 2
    # Pulse Rate, bit 3 User ID, bit 4 Measurement Status; pressures as SFLOAT (IEEE 11073-20601
    # 16-bit FLOAT: 4-bit exponent, 12-bit mantissa), 120 = 12e1, 80 = 8e1, 93 = 93e0
    (
        "2a35",
        {"systolic_mmhg": 120.0, "diastolic_mmhg": 80.0, "mean_arterial_pressure_mmhg": 93.0},
        "000c1008105d00",
        "GSS, Blood Pressure Measurement: flags 0 (mmHg), three SFLOAT",
    ),
    (
        "2a35",
        {
            "systolic_mmhg": 120.0,
            "diastolic_mmhg": 80.0,
            "mean_arterial_pressure_mmhg": 93.0,
            "timestamp": "2024-01-02T03:04:05",
            "pulse_rate_bpm": 72.0,
            "user_id": 1,
            "measurement_status": 0,
        },
        "1e0c1008105d00e80701020304054800010000",
        "GSS, Blood Pressure Measurement: flags 0x1e, Date Time, SFLOAT 72, uint8 1, uint16 0",
    ),
    (
        "2a36",
        {"current_cuff_pressure_mmhg": 120.0},
        "000c10ff07ff07",
        "GSS, Intermediate Cuff Pressure: diastolic and mean arterial pressure are NaN (0x07FF)",
    ),
    (
        "2a67",
        {"instantaneous_speed": 3.0},
        "01002c01",
        "GSS, Location and Speed: flags bit 0 (speed present), uint16 300 in 0.01 m/s",
    ),
]

#: Values with nested fields: a read flattens them (timezone_offset_hours), so they are given
#: as the error lists them and are not written back as read (the README says so).
NESTED: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "2a0f",
        {
            "timezone": {"description": "UTC+01:00", "offset_hours": 1.0, "raw_value": 4},
            "dst_offset": {"description": "Daylight Time", "offset_hours": 1.0, "raw_value": 4},
        },
        "0404",
        "GSS, Local Time Information: Time Zone sint8 in 15 min (4 = +1 h), DST Offset 4 (+1 h)",
    ),
]

WRITABLE = sorted({uuid for uuid, *_ in VECTORS + NESTED} | {"2a67", "fff1"})
CHARACTERISTICS = "".join(
    f'[[devices.services.characteristics]]\nuuid = "{uuid}"\n'
    'properties = ["read", "write"]\nvalue = "00"\n'
    for uuid in WRITABLE
)
WORLD = f"""
name = "typed writes"
[[devices]]
address = "{DEVICE}"
name = "Setpoints"
adv_interval_ms = 20
[[devices.services]]
uuid = "181c"
{CHARACTERISTICS}"""


def typed_app(tmp_path: Any, server: str = "") -> Any:
    world = tmp_path / "typed.toml"
    world.write_text(WORLD)
    return make_app(tmp_path, f"[server]\n{server}\n", world=str(world))  # sig is on by default


async def stored(c: Client, uuid: str) -> str:
    """The bytes the peripheral holds, read back over MCP, as hex (a text value is shown as
    its text alone when that is exactly the bytes)."""
    read = await ok(c, "ble_read", address=DEVICE, characteristic=uuid)
    return str(read["hex"]) if "hex" in read else str(read["text"]).encode().hex()


async def connect(c: Client) -> None:
    await ok(c, "ble_scan", duration_s=0.5)
    await ok(c, "ble_connect", address=DEVICE)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    app = typed_app(tmp_path_factory.mktemp("typed"))
    async with Client(build_server(app)) as c:
        await connect(c)
        yield c


@pytest.mark.parametrize(
    ("uuid", "typed", "expected", "source"),
    VECTORS + NESTED,
    ids=[f"{v[0]}-{v[2]}" for v in VECTORS + NESTED],
)
async def test_typed_write_reaches_the_peripheral(
    client: Client, uuid: str, typed: dict[str, Any], expected: str, source: str
) -> None:
    done = await ok(client, "ble_write", address=DEVICE, characteristic=uuid, value=typed)
    assert done["hex"] == expected, source
    assert "bytes" not in done  # the hex says how many
    assert await stored(client, uuid) == expected, source


@pytest.mark.parametrize(
    ("uuid", "typed", "expected", "source"),
    VECTORS,
    ids=[f"{v[0]}-{v[2]}" for v in VECTORS],
)
async def test_what_a_read_decodes_writes_back_the_same_bytes(
    client: Client, uuid: str, typed: dict[str, Any], expected: str, source: str
) -> None:
    """decode(encode(v)) == v: the fields ble_read decodes from the vector's bytes, written
    back as a typed value, are the same bytes."""
    await ok(client, "ble_write", address=DEVICE, characteristic=uuid, value=expected)
    read = await ok(client, "ble_read", address=DEVICE, characteristic=uuid)
    fields = {key: item for key, item in read.items() if key != "hex"}
    await ok(client, "ble_write", address=DEVICE, characteristic=uuid, value="00")
    done = await ok(client, "ble_write", address=DEVICE, characteristic=uuid, value=fields)
    assert done["hex"] == expected, (source, fields)


async def test_text_values_are_written_as_before(client: Client) -> None:
    done = await ok(client, "ble_write", address=DEVICE, characteristic="2a80", value="2a")
    assert "hex" not in done  # only a typed value reports what it became
    assert await stored(client, "2a80") == "2a"
    await ok(
        client, "ble_write", address=DEVICE, characteristic="2a8a", value="Ada", encoding="utf8"
    )
    assert await stored(client, "2a8a") == "416461"


#: (characteristic, wrong value, words the error must hold: the fields expected, units, ranges)
WRONG: list[tuple[str, Any, list[str]]] = [
    ("2a6e", {"temp": 21.5}, ["takes one field, 'value'", "°C", "-273.15..327.67"]),
    ("2a6e", {"value": "warm"}, ["Expected `float`, got `str`", "{value: number, °C"]),
    ("2a6e", {"value": 400}, ["outside allowed range", "-273.15..327.67"]),
    ("2a06", {"value": "loud"}, ["'loud' is not one of no_alert|mild_alert|high_alert"]),
    ("2a1c", {"temperature_c": 36.4, "temperature_type": "nose"}, ["not one of armpit|"]),
    ("2a37", {"heart_rate_bpm": 70000}, ["0-65535"]),
    (
        "2a37",
        {"heart_rate_bpm": 73, "energy_expended_j": 256},
        ["has no field 'energy_expended_j'", "energy_expended (integer, kJ)?"],
    ),
    (
        "2a37",
        {"heart_rate_bpm": 73, "flags": [], "energy_expended_kj": 256},
        ["the flags given leave out fields given", "leave 'flags' out", "rr_intervals (list of"],
    ),
    ("2a85", {"year": 2000, "month": 1}, ["needs 'day'", "year (integer", "day (integer"]),
    ("2a85", {"year": 2000, "month": 1, "day": 1, "hour": 3}, ["has no field 'hour'"]),
    (
        "2a2b",
        {"date_time": "yesterday", "day_of_week": 1, "fractions256": 0, "adjust_reason": 0},
        ["date_time", "ISO date-time"],
    ),
    ("2a80", {"value": [1, 2]}, ["{value: integer"]),
]


@pytest.mark.parametrize(("uuid", "value", "words"), WRONG)
async def test_a_wrong_shape_lists_the_fields(
    client: Client, uuid: str, value: Any, words: list[str]
) -> None:
    before = await stored(client, uuid)
    text, info = await failure(
        client, "ble_write", address=DEVICE, characteristic=uuid, value=value
    )
    assert info["code"] == "invalid_input", text
    assert all(word in text for word in words), text
    assert "reserved" not in text.lower() and "vartuple" not in text, text  # library internals
    after = await stored(client, uuid)
    assert after == before  # nothing was sent


async def test_a_member_name_as_hex_says_it_is_not_hex(client: Client) -> None:
    text, info = await failure(
        client, "ble_write", address=DEVICE, characteristic="2a06", value="high_alert"
    )
    assert info["code"] == "invalid_input", text
    assert "'high_alert' is not hex" in text and "send an object" in text, text


async def test_no_decoder_knows_the_characteristic(client: Client) -> None:
    text, info = await failure(
        client, "ble_write", address=DEVICE, characteristic="fff1", value={"value": 1}
    )
    assert info["code"] == "invalid_input"
    assert "Typed values are not known for characteristic fff1" in text, text
    assert "hex" in text


@pytest.mark.parametrize(
    "value",
    [
        {"value": {"a": {"b": {"c": {"d": 1}}}}},  # too deep
        {f"k{i}": i for i in range(100)},  # too many items
        {"value": "x" * 2000},  # too much text
        {"value": 1 << 80},  # wider than any field
    ],
    ids=["deep", "wide", "long", "huge"],
)
async def test_oversized_typed_values_are_refused_first(client: Client, value: Any) -> None:
    text, info = await failure(
        client, "ble_write", address=DEVICE, characteristic="2a6e", value=value
    )
    assert info["code"] == "invalid_input", text
    assert "no characteristic takes that much" in text or "64 bits" in text, text


class Person:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})


async def test_confirm_asks_with_the_bytes_and_the_typed_value(tmp_path: Any) -> None:
    person = Person()
    app = typed_app(tmp_path, 'write_policy = "confirm"')
    async with Client(build_server(app), elicitation_callback=person) as c:
        await connect(c)
        typed = {"value": 21.48}
        await ok(c, "ble_write", address=DEVICE, characteristic="2a6e", value=typed)
        [question] = person.asked
        assert "2 bytes, hex 64 08" in question, question
        assert 'typed value {"value":21.48}' in question, question
        assert await stored(c, "2a6e") == "6408"
        await ok(
            c, "ble_write", address=DEVICE, characteristic="2a06", value={"value": "high_alert"}
        )
        assert (
            'Allow writing 1 byte, hex 02 (typed value {"value":"high_alert"})' in person.asked[1]
        )


async def test_read_only_refuses_a_typed_write(tmp_path: Any) -> None:
    app = typed_app(tmp_path, 'write_policy = "read_only"')
    async with Client(build_server(app)) as c:
        await connect(c)
        text = await error(
            c, "ble_write", address=DEVICE, characteristic="2a6e", value={"value": 21.48}
        )
        assert "read-only" in text and "nothing was sent" in text, text
        assert await stored(c, "2a6e") == "00"
