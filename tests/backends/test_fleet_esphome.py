"""ESPHome proxies as radios of a fleet (``[[radios]]`` with ``backend = "esphome"``), through a
real MCP client: two fake proxies (tests/testbed/esphome_proxy.py) hear the same virtual
peripherals, one near them with Noise encryption and its key from the environment, one farther
away in plaintext. The merge names the nearer proxy, connects go to the best proxy with a free
slot as the proxies report them, and a proxy that goes away ends only its own links; the device
reconnects through the other, and the proxy is re-acquired when it is back."""

from __future__ import annotations

import asyncio

from mcp.client import Client

from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core import radio
from mcp_ble.core.app import BleApp
from mcp_ble.core.cli import main
from mcp_ble.core.server import build_server

from tests.backends_under_test import CONTRACT_WORLD
from tests.helpers import load, ok, write_config
from tests.testbed.esphome_proxy import FakeProxy, ProxiedWorld

SENSOR = "C0:FF:EE:00:00:01"
OTHER = "C0:FF:EE:00:00:02"
KEY = "LaOYPM8T6tYNmAHuGBZtTe/RRrjuFgOQ8HZrRVk1n3w="


async def test_esphome_proxies_serve_as_one(tmp_path, monkeypatch):
    monkeypatch.setattr(radio, "RECOVERY_FIRST_S", 0.05)
    monkeypatch.setenv("KITCHEN_PROXY_KEY", KEY)
    kitchen = await ProxiedWorld.start(
        load_world(str(CONTRACT_WORLD)), name="kitchen", psk=KEY, slots=1
    )
    garage = await FakeProxy(
        kitchen.virtual.link, name="garage", mac="AC:0B:FB:00:00:02", rssi_offset=-20
    ).start()
    config = write_config(
        tmp_path,
        'plugins = []\n[server]\nwrite_policy = "open"\n'
        '[[radios]]\nname = "kitchen"\nbackend = "esphome"\nhost = "127.0.0.1"\n'
        f'port = {kitchen.proxy.port}\nnoise_psk_env = "KITCHEN_PROXY_KEY"\n'
        '[[radios]]\nname = "garage"\nbackend = "esphome"\nhost = "127.0.0.1"\n'
        f"port = {garage.port}\n",
    )
    loaded, catalog = load(config)
    app = BleApp.create(loaded, catalog)
    try:
        async with Client(build_server(app)) as client:
            scan = await ok(client, "ble_scan", duration_s=1.0)
            seen = {d["address"]: d for d in scan["devices"]}
            assert seen[SENSOR]["radio"] == seen[OTHER]["radio"] == "kitchen"
            heard = app.tracker.get(SENSOR).heard_by
            assert heard is not None and set(heard) == {"kitchen", "garage"}
            assert heard["kitchen"][0] - heard["garage"][0] == 20

            # The kitchen proxy is the best radio; once it reports its one slot taken, the
            # next device goes through the garage proxy.
            first = await ok(client, "ble_connect", address=SENSOR)
            assert first["radio"] == "kitchen" and first["mtu"] == 247
            second = await ok(client, "ble_connect", address=OTHER)
            assert second["radio"] == "garage" and second["mtu"] == 247
            radios = (await ok(client, "ble_status"))["radios"]
            assert radios["kitchen"].startswith("ready; slots 1/1"), radios
            assert radios["garage"].startswith("ready; slots 1/3"), radios
            await ok(client, "ble_subscribe", address=SENSOR, characteristic="2a19")

            # The kitchen proxy loses power: its link ends with the reason, the garage serves.
            await kitchen.proxy.stop()
            for _ in range(250):
                got = await ok(client, "ble_notifications", address=SENSOR, characteristic="2a19")
                if "ended" in got:
                    break
                await asyncio.sleep(0.02)
            assert got["ended"].startswith("link lost: radio kitchen lost: the ESPHome proxy at")
            links = {
                c["address"]: c["radio"]
                for c in (await ok(client, "ble_connections"))["connections"]
            }
            assert links == {OTHER: "garage"}
            assert (await ok(client, "ble_status"))["radio"] == "ready (1 of 2 radios down)"

            # The sensor reconnects through the proxy that remains and hears it.
            again = await ok(client, "ble_connect", address=SENSOR)
            assert again["radio"] == "garage"
            value = await ok(client, "ble_read", address=SENSOR, characteristic="2a19")
            assert value["hex"] == "55"

            # Back on its port, the kitchen proxy is re-acquired in the background.
            await kitchen.proxy.start()
            for _ in range(250):
                radios = (await ok(client, "ble_status"))["radios"]
                if radios["kitchen"].startswith("ready"):
                    break
                await asyncio.sleep(0.02)
            assert radios["kitchen"].startswith("ready"), radios
    finally:
        await garage.stop()
        await kitchen.stop()


def test_config_show_lists_each_radio_key_and_masks_its_key(tmp_path, capsys):
    """Each [[radios]] key is a row of its own (the table stays as narrow as without radios),
    and a key set in the file shows as set, never its value."""
    tables = "".join(
        f'[[radios]]\nname = "{name}"\nbackend = "esphome"\nhost = "{name}.local"\n{extra}'
        for name, extra in (("kitchen", f'noise_psk = "{KEY}"\n'), ("garage", ""))
    )
    config = write_config(tmp_path, tables)
    assert main(["config", "show", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in shown.splitlines()[2:]}
    assert rows["radios.0.name"] == ['"kitchen"', str(config)]
    assert rows["radios.0.noise_psk"] == ['"**********"', str(config)]
    assert rows["radios.1.host"] == ['"garage.local"', str(config)]
    assert rows["radios.1.port"] == ["6053", "default"]
    assert "radios.1.noise_psk" not in rows and KEY not in shown
    write_config(tmp_path, 'backend = "esphome"\n[backends.esphome]\nhost = "kitchen.local"\n')
    assert main(["config", "show", "--config", str(config)]) == 0
    alone = capsys.readouterr().out
    assert max(map(len, shown.splitlines())) <= max(map(len, alone.splitlines()))
