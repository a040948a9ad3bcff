"""The whole MCP surface over a real BLE host stack: the SDK client drives the server, whose
bumble backend talks real HCI/ATT to the test bed's virtual peripherals on a LocalLink."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from bumble.link import LocalLink
from mcp.client import Client

from mcp_ble.backends.bumble.backend import BumbleBackend
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.app import BleApp
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.server import build_server

from tests.backends_under_test import CONTRACT_WORLD
from tests.helpers import error, load, ok, write_config
from tests.testbed.link import opener
from tests.testbed.peripherals import VirtualWorld

SENSOR = "C0:FF:EE:00:00:01"
RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


class TestBedBackend:
    """A plugin registering the production bumble backend on the test bed's link, exactly as a
    third-party backend plugin registers itself."""

    link: LocalLink | None = None

    @hookimpl
    def mcp_ble_register_backends(self, register):
        register(
            "bumble-testbed",
            lambda settings, app: BumbleBackend(
                "link:test-bed", open_transport=opener(TestBedBackend.link)
            ),
        )


@contextlib.asynccontextmanager
async def served(tmp_path) -> AsyncIterator[tuple[Client, BleApp]]:
    TestBedBackend.link = LocalLink()
    world = await VirtualWorld(load_world(str(CONTRACT_WORLD)), TestBedBackend.link).start()
    try:
        config = write_config(
            tmp_path,
            'backend = "bumble-testbed"\nplugins = ["metrics", "sig"]\n'
            '[server]\nwrite_policy = "open"\n',
        )
        loaded, catalog = load(config, extra_plugins={"testbed": TestBedBackend})
        app = BleApp.create(loaded, catalog)
        async with Client(build_server(app)) as client:
            yield client, app
    finally:
        await world.stop()


async def test_mcp_flow_over_real_att(tmp_path):
    async with served(tmp_path) as (client, app):
        status = await ok(client, "ble_status")
        assert status["backend"]["name"] == "bumble" and status["simulated"] is False
        scan = await ok(client, "ble_scan", duration_s=0.5, name="contract sensor")
        assert [d["address"] for d in scan["devices"]] == [SENSOR]
        [maker] = scan["devices"][0]["manufacturer_data"]
        assert maker == "89 Nordic Semiconductor ASA"
        conn = await ok(client, "ble_connect", address=SENSOR)
        assert conn["mtu"] == 247
        tree = await ok(client, "ble_services", address=SENSOR, read_values=True)
        names = {c.get("name"): c for s in tree["services"] for c in s["characteristics"]}
        assert names["Battery Level"]["value"] == {"hex": "55", "battery_level_percent": 85}
        sub = await ok(client, "ble_subscribe", address=SENSOR, characteristic=TX)
        assert "already_subscribed" not in sub
        await ok(
            client,
            "ble_write",
            address=SENSOR,
            characteristic=RX,
            value="over ATT",
            encoding="utf8",
        )
        got = await ok(client, "ble_notifications", address=SENSOR, characteristic=TX, wait_s=5)
        assert [n["text"] for n in got["notifications"]] == ["over ATT"]
        long = "ab" * 512
        await ok(
            client,
            "ble_write",
            address=SENSOR,
            characteristic="12345678-1234-5678-1234-56789abcdef1",
            value=long,
        )
        read = await ok(
            client,
            "ble_read",
            address=SENSOR,
            characteristic="12345678-1234-5678-1234-56789abcdef1",
        )
        assert read["hex"] == long
        text = await error(
            client,
            "ble_write",
            address=SENSOR,
            characteristic="12345678-1234-5678-1234-56789abcdef3",
            value="010203",
        )
        assert "Invalid Attribute Value Length" in text
        assert (await ok(client, "ble_pair", address=SENSOR)) == {"paired": True}
        assert (await ok(client, "ble_read", address=SENSOR, characteristic="2a19"))["hex"] == "55"
        await ok(client, "ble_disconnect", address=SENSOR)
        assert app.metrics_registry.get_sample_value("ble_connection_success_total") == 1


async def test_pair_on_a_backend_that_cannot(tmp_path):
    from tests.helpers import make_app

    async with Client(build_server(make_app(tmp_path))) as client:
        await ok(client, "ble_scan", duration_s=2.0)
        await ok(client, "ble_connect", address="C4:7C:8D:6A:12:01")
        text = await error(client, "ble_pair", address="C4:7C:8D:6A:12:01")
        assert "cannot pair" in text and "Bluetooth settings" in text
        text = await error(client, "ble_pair", address="E8:31:CD:44:09:7A")
        assert "not connected" in text
