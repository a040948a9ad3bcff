"""The sig plugin's pieces without a server: IEEE 11073 floats, unit suffixes, names."""

from __future__ import annotations

import math

import pytest

from mcp_ble.core.values import parse_uuid
from mcp_ble.plugins.sig import decode, library, name
from mcp_ble.plugins.sig.decode import snake, unit_suffix
from mcp_ble.plugins.sig.ieee11073 import (
    encode_float32,
    encode_sfloat,
    parse_float32,
    parse_sfloat,
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # IEEE 11073-20601 FLOAT: 8-bit signed exponent, 24-bit signed mantissa (GSS medfloat32)
        ("6c0100ff", 36.4),  # 0xFF00016C: 364 x 10^-1, a Health Thermometer's reading
        ("da0300ff", 98.6),
        ("010000fe", 0.01),
        ("feffff00", -2.0),
        ("01000006", 1_000_000.0),  # 1 x 10^6: written with the fewest digits
    ],
)
def test_float32(raw, value):
    assert parse_float32(bytes.fromhex(raw)) == value
    assert encode_float32(value).hex() == raw
    assert parse_float32(bytes.fromhex("40420f00")) == 1_000_000.0  # 1000000 x 10^0 reads too


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # SFLOAT: 4-bit signed exponent, 12-bit signed mantissa (GSS medfloat16)
        ("7900", 121.0),  # a blood pressure of 121 mmHg
        ("78f0", 12.0),  # 120 x 10^-1
        ("ffff", -0.1),  # 0xFFFF: mantissa -1, exponent -1
        ("0a80", 10e-8),  # 0x800A: exponent -8 (bluetooth-sig 0.6 read it as 10)
    ],
)
def test_sfloat(raw, value):
    assert math.isclose(parse_sfloat(bytes.fromhex(raw)), value)


@pytest.mark.parametrize("raw", ["ff07", "0008"])  # NaN, NRes
def test_sfloat_not_a_number(raw):
    assert math.isnan(parse_sfloat(bytes.fromhex(raw)))


def test_special_values_and_round_trips():
    assert parse_sfloat(bytes.fromhex("fe07")) == math.inf
    assert parse_sfloat(bytes.fromhex("0208")) == -math.inf
    assert encode_sfloat(math.nan).hex() == "ff07"
    assert encode_float32(-math.inf).hex() == "02008000"
    for value in (0.0, 0.5, -2.5, 36.4, 120.0, 1.25):
        assert parse_sfloat(encode_sfloat(value)) == value
        assert parse_float32(encode_float32(value)) == value


def test_the_library_uses_the_corrected_floats():
    library()
    from bluetooth_sig.gatt.characteristics.utils.ieee11073_parser import IEEE11073Parser

    assert IEEE11073Parser.parse_float32(bytes.fromhex("6c0100ff")) == 36.4
    # Temperature Measurement, flags 0: 36.4 degrees Celsius (GSS), not 3.64e129
    assert decode(parse_uuid("2a1c"), bytes.fromhex("006c0100ff")) == {"temperature_c": 36.4}


@pytest.mark.parametrize(
    ("unit", "suffix"),
    [
        ("%", "percent"),
        ("°C", "c"),
        ("°", "deg"),
        ("m/s²", "m_per_s2"),
        ("kg/m³", "kg_per_m3"),
        ("N·m", "n_m"),
        ("dB SPL", "db_spl"),
        ("length.meter", "m"),
        ("", ""),
        ("mg/dL or mmol/L", ""),
    ],
)
def test_unit_suffixes(unit, suffix):
    assert unit_suffix(unit) == suffix


def test_keys_from_names():
    assert snake("Acceleration - 3D") == "acceleration_3d"
    assert snake("CO\\textsubscript{2} Concentration") == "co2_concentration"


def test_names_come_from_the_registry_then_bluetooth_numbers():
    assert name(parse_uuid("180d")) == "Heart Rate"
    assert name(parse_uuid("2a37")) == "Heart Rate Measurement"
    assert name(parse_uuid("2902")) == "Client Characteristic Configuration"
    assert name("6e400001-b5a3-f393-e0a9-e50e24dcca9e") == "Nordic UART Service"
    assert name("12345678-1234-5678-1234-56789abcdef0") is None
    assert name("not a uuid") is None


def test_what_the_library_cannot_parse_is_none():
    assert decode(parse_uuid("2a37"), b"\x01") is None  # too short for a 16-bit value
    assert decode(parse_uuid("fff1"), b"\x01\x02") is None  # no parser
    assert decode(parse_uuid("2a19"), b"") is None


def test_a_characteristic_class_is_the_one_the_library_lookup_finds():
    """characteristic_class imports one module; the library's CharacteristicRegistry imports
    them all. Over every class the library's lookup knows, both give the same class, and the
    module of the characteristic's name holds nearly all of them (else the first value of a
    characteristic would load every module again)."""
    from bluetooth_sig.gatt.characteristics.registry import CharacteristicRegistry
    from bluetooth_sig.gatt.uuid_registry import get_uuid_registry

    from mcp_ble.plugins.sig import characteristic_class, class_in_module

    library()
    known = CharacteristicRegistry.get_instance()._get_sig_classes_map()
    assert len(known) > 400
    in_module = 0
    for uuid, cls in known.items():
        assert characteristic_class(uuid.normalized) is cls, cls
        info = get_uuid_registry().get_characteristic_info(uuid.normalized)
        found = class_in_module(info)
        assert found in (cls, None), cls
        in_module += found is cls
    assert in_module >= 0.95 * len(known)
    # a vendor UUID, a descriptor, a service: no characteristic class
    assert characteristic_class("6e400002-b5a3-f393-e0a9-e50e24dcca9e") is None
    assert characteristic_class("2902") is None
    assert characteristic_class("180d") is None


def test_the_registry_class_check_agrees_with_issubclass():
    """The plugin's replacement of the registry's class test (an MRO scan instead of an ABC
    subclass check) says the same of every class in a tenth of the characteristic modules
    (each failing ABC check walks the ABC's 500 subclasses: all modules take seconds)."""
    import importlib
    import inspect

    from bluetooth_sig.gatt.characteristics import registry

    library()
    base = registry.BaseCharacteristic
    checked = 0
    for module in sorted(library()["modules"])[::10]:
        for _, obj in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            assert registry._is_characteristic_subclass(obj) == issubclass(obj, base), obj
            checked += 1
    assert checked > 200
