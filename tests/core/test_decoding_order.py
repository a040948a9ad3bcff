"""The decoding hooks: the first decoder the settings file lists that answers wins, whatever
the order the plugins were installed or registered in; a failing decoder never fails a value."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_ble.core.errors import InvalidInput
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.values import parse_uuid

from tests.helpers import make_app

BATTERY = parse_uuid("2a19")


class Percent:
    @hookimpl
    def mcp_ble_decode_value(self, uuid: str, data: bytes) -> dict[str, Any] | None:
        return {"level_percent": data[0]} if uuid == BATTERY else None

    @hookimpl
    def mcp_ble_uuid_name(self, uuid: str) -> str | None:
        return "Percent's name" if uuid == BATTERY else None


class Fraction:
    @hookimpl
    def mcp_ble_decode_value(self, uuid: str, data: bytes) -> dict[str, Any] | None:
        return {"level_fraction": data[0] / 100}

    @hookimpl
    def mcp_ble_uuid_name(self, uuid: str) -> str | None:
        return "Fraction's name"

    @hookimpl
    def mcp_ble_encode_value(self, uuid: str, value: Any) -> bytes | None:
        if not isinstance(value, dict) or set(value) != {"level_fraction"}:
            raise InvalidInput("expected fields: level_fraction")
        return bytes([round(value["level_fraction"] * 100)])


class Broken:
    @hookimpl
    def mcp_ble_decode_value(self, uuid: str, data: bytes) -> dict[str, Any] | None:
        raise ValueError("a decoder bug")


EXTRA = {"percent": Percent, "fraction": Fraction, "broken": Broken}


@pytest.mark.parametrize(
    ("order", "decoded", "name"),
    [
        (["percent", "fraction"], {"level_percent": 87}, "Percent's name"),
        (["fraction", "percent"], {"level_fraction": 0.87}, "Fraction's name"),
    ],
)
def test_the_first_listed_decoder_that_answers_wins(tmp_path, order, decoded, name):
    listed = ", ".join(f'"{n}"' for n in order)
    app = make_app(tmp_path, f"plugins = [{listed}]", extra_plugins=EXTRA)
    assert app.codec.decode(BATTERY, b"\x57") == decoded
    assert app.codec.name(BATTERY) == name
    # Percent does not know this UUID, so the next decoder answers whichever comes first
    other = parse_uuid("2a6e")
    assert app.codec.decode(other, b"\x57") == {"level_fraction": 0.87}
    assert app.codec.name(other) == "Fraction's name"


def test_encoding_and_its_wrong_shape(tmp_path):
    app = make_app(tmp_path, 'plugins = ["fraction"]', extra_plugins=EXTRA)
    assert app.codec.encode(BATTERY, {"level_fraction": 0.5}) == b"\x32"
    with pytest.raises(InvalidInput, match="expected fields: level_fraction") as info:
        app.codec.encode(BATTERY, {"level": 1})
    assert info.value.code == "invalid_input"


def test_no_decoder_and_a_broken_one_leave_the_value_undecoded(tmp_path):
    bare = make_app(tmp_path, "plugins = []", extra_plugins=EXTRA)
    assert bare.codec.decode(BATTERY, b"\x57") is None
    assert bare.codec.encode(BATTERY, 1) is None
    assert bare.codec.name(BATTERY) is None
    broken = make_app(tmp_path, 'plugins = ["broken", "percent"]', extra_plugins=EXTRA)
    # a decoder that raises is logged and skipped for that value: nothing decoded, no error
    assert broken.codec.decode(BATTERY, b"\x57") is None
