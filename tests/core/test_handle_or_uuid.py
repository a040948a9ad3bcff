"""An integer names a handle, but some clients send digits as a JSON number: the MCP Inspector CLI
sends `--tool-arg descriptor=2902` as 2902. When no attribute has that handle and the digits spell
a UUID the device has, the error says so (and does not guess: a handle and a UUID differ)."""

from __future__ import annotations

import pytest

from mcp_ble.core.errors import AttributeNotFound
from mcp_ble.core.gatt import GattIndex
from mcp_ble.core.models import GattCharacteristic, GattDescriptor, GattService
from mcp_ble.core.values import parse_uuid

from tests.external import http_server
from tests.test_clients import HRM, env, inspector  # noqa: F401  (env is a fixture)


def test_inspector_digits_for_a_descriptor_get_the_uuid_hint(env):  # noqa: F811
    with http_server(env) as url:
        connect = inspector(env, [url], "ble_connect", {"address": HRM})
        assert not connect.is_error, connect.text
        args = {"address": HRM, "descriptor": 2902, "characteristic": "2a37"}
        shown = inspector(env, [url], "ble_read_descriptor", args)
        assert shown.is_error and shown.text.startswith("attribute_not_found"), shown.text
        assert "no descriptor with handle 2902" in shown.text
        assert "Did you mean UUID '2902'? Pass it as a string" in shown.text, shown.text
        args["descriptor"] = "0x2902"  # what the hint's string form does
        shown = inspector(env, [url], "ble_read_descriptor", args)
        assert not shown.is_error, shown.text


def _index() -> GattIndex:
    cccd = GattDescriptor(parse_uuid("2902"), 4)
    level = GattCharacteristic(parse_uuid("2a19"), 3, ("read", "notify"), [cccd])
    custom = GattCharacteristic(parse_uuid("1234"), 6, ("read",))
    return GattIndex([GattService(parse_uuid("180f"), 1, [level, custom])])


@pytest.mark.parametrize(
    ("kind", "ref", "hint"),
    [
        ("characteristic", 1234, "Did you mean UUID '1234'?"),  # digits that spell a UUID here
        ("descriptor", 2902, "Did you mean UUID '2902'?"),
        ("characteristic", 2902, "handles here: 3, 6"),  # a descriptor's UUID
        ("characteristic", 5678, "handles here: 3, 6"),  # no such UUID
        ("descriptor", 2901, "ble_services lists every descriptor"),
    ],
)
def test_an_unknown_integer_handle_names_the_uuid_it_spells(kind, ref, hint):
    index = _index()
    with pytest.raises(AttributeNotFound) as caught:
        if kind == "descriptor":
            index.descriptor(ref, HRM, None)
        else:
            index.characteristic(ref, HRM)
    assert f"with{' value' if kind == 'characteristic' else ''} handle {ref}" in str(caught.value)
    assert hint in str(caught.value)


def test_an_integer_that_is_a_handle_is_the_handle():
    index = _index()
    assert index.characteristic(6, HRM).uuid == parse_uuid("1234")  # never guessed as a UUID
    assert index.descriptor(4, HRM, None).uuid == parse_uuid("2902")
