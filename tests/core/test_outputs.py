"""The value shape every result uses: hex, text, and decoded fields named with their unit."""

from __future__ import annotations

import pytest

from mcp_ble.core.decoding import Codec
from mcp_ble.core.outputs import lean_schema, value_fields
from mcp_ble.core.plugin_manager import build_plugin_manager
from mcp_ble.plugins.sig import SigPlugin


def sig(short: str) -> str:
    return f"0000{short}-0000-1000-8000-00805f9b34fb"


CUSTOM = "12345678-1234-5678-1234-56789abcdef1"
SIG = Codec(build_plugin_manager([("sig", SigPlugin())]).hook)


@pytest.mark.parametrize(
    ("uuid", "data", "fields"),
    [
        # a number decodes with its unit, and has no text copy (0x57 is 87 %, not "W")
        (sig("2a19"), b"\x57", {"hex": "57", "battery_level_percent": 87}),
        (
            sig("2a37"),
            b"\x06\x49",
            {"hex": "0649", "heart_rate_bpm": 73, "sensor_contact": True},
        ),
        # a string characteristic is its text, without a hex copy of the same bytes
        (sig("2a29"), b"Acme Fitness", {"text": "Acme Fitness"}),
        (sig("2a29"), b"Acme\xff", {"hex": "41636d65ff", "text": "Acme\ufffd"}),
        # unknown: one byte is a number; a short text keeps its hex; a longer one is text
        (CUSTOM, b"\x41", {"hex": "41"}),
        (CUSTOM, b"AB", {"hex": "4142", "text": "AB"}),
        (CUSTOM, b"hi there", {"text": "hi there"}),
        (CUSTOM, b"\x00\x01\x02", {"hex": "000102"}),
        # too short or malformed for its decoder: shown as unknown bytes are, never an error
        (sig("2a6e"), b"\x00", {"hex": "00"}),
        (sig("2a37"), b"\x01\x48", {"hex": "0148"}),
    ],
)
def test_value_fields(uuid, data, fields):
    assert value_fields(uuid, data, SIG) == fields


def test_without_a_decoder_a_value_is_hex_and_text():
    assert value_fields(sig("2a19"), b"\x57") == {"hex": "57"}
    assert value_fields(sig("2a29"), b"Acme Fitness") == {"text": "Acme Fitness"}


def test_lean_schema_is_portable_and_equivalent():
    schema = {
        "title": "R",
        "type": "object",
        "properties": {
            "a": {"title": "A", "anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "b": {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "b"},
            "c": {"$ref": "#/$defs/C"},
        },
        "required": ["c"],
        "$defs": {"C": {"title": "C", "type": "object", "properties": {"x": {"type": "integer"}}}},
    }
    assert lean_schema(schema) == {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "b"},
            "c": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
        "required": ["c"],
    }
    output = lean_schema(schema, output=True)
    assert "description" not in output["properties"]["b"]
