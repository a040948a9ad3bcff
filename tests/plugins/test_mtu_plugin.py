"""The mtu plugin at run time: the MTU that fills the link's data length, on the simulated and
bumble backends, and what ble_connect / ble_connections say about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_ble.core.app import BleApp
from mcp_ble.core.errors import BleError
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter
from mcp_ble.plugins.mtu import fill_mtu

from tests.helpers import load, make_app, write_config

WORLD = """
name = "mtu"
description = "One device that accepts MTU 517, behind links with and without DLE"
seed = 3

[link]
data_length = {data_length}

[[devices]]
address = "A0:00:00:00:00:07"
name = "Big MTU"
mtu = 517
service_uuids = ["180f"]

[[devices.services]]
uuid = "180f"

[[devices.services.characteristics]]
uuid = "2a19"
properties = ["read"]
value = "55"
"""
DEVICE = "A0:00:00:00:00:07"


def world(tmp_path: Path, data_length: int) -> Path:
    path = tmp_path / f"mtu{data_length}.toml"
    path.write_text(WORLD.format(data_length=data_length))
    return path


def test_fill_mtu():
    assert fill_mtu(251) == 247  # 247-byte ATT PDU + 4-byte L2CAP header = one 251-byte packet
    assert fill_mtu(27) == 23
    assert fill_mtu(100) == 96


async def test_247_with_dle_and_23_without_on_the_simulated_backend(tmp_path):
    for data_length, expected in ((251, 247), (27, 23)):
        async with make_app(
            tmp_path, 'plugins = ["mtu"]', world=world(tmp_path, data_length), time_scale=0
        ) as app:
            conn, _ = await app.connect(DEVICE)
            assert (conn.mtu, conn.mtu_by) == (expected, "asked")
            assert app.radio.link_params(DEVICE).mtu == expected  # the link itself has it
            assert not any("mtu" in note for note in conn.notes)  # mtu_by says it


async def test_without_the_plugin_the_largest_mtu_is_taken(tmp_path):
    async with make_app(tmp_path, "plugins = []", world=world(tmp_path, 251), time_scale=0) as app:
        conn, _ = await app.connect(DEVICE)
        assert (conn.mtu, conn.mtu_by) == (517, None)


async def test_a_peer_with_a_smaller_mtu_keeps_it(tmp_path):
    async with make_app(tmp_path, 'plugins = ["mtu"]', time_scale=0) as app:  # demo world
        await app.scan(1.0, ScanFilter())
        conn, _ = await app.connect("C4:7C:8D:6A:12:01")  # the strap offers 185
        assert (conn.mtu, conn.mtu_by) == (185, "asked")


class Borrowed:
    """Registers a bumble backend the test already started."""

    backend: Any = None

    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        register("borrowed", lambda settings, app: Borrowed.backend)


async def _noop() -> None:
    return None


@pytest.mark.parametrize("dle", [True, False])
async def test_bumble_asks_for_247_with_dle(tmp_path, dle):
    # Real HCI and ATT between bumble's host and the test bed's controllers; the device offers
    # 517. With a DLE-capable controller the link reports 251 octets and the plugin asks for 247;
    # without one the data length is unknown and the backend asks for its largest.
    from bumble.link import LocalLink

    from mcp_ble.backends.bumble.backend import BumbleBackend
    from mcp_ble.backends.simulated.world import load_world

    from tests.testbed.link import opener
    from tests.testbed.peripherals import VirtualWorld

    link = LocalLink()
    virtual = await VirtualWorld(load_world(str(world(tmp_path, 251))), link).start()
    backend = BumbleBackend("link:test-bed", open_transport=opener(link, dle=dle))
    await backend.start()
    backend.start = backend.stop = _noop  # this test owns its lifetime
    Borrowed.backend = backend
    try:
        toml = 'backend = "borrowed"\nplugins = ["mtu"]\n'
        loaded, catalog = load(write_config(tmp_path, toml), extra_plugins={"b": Borrowed})
        async with BleApp.create(loaded, catalog) as app:
            await app.scan(1.0, ScanFilter())
            conn, _ = await app.connect(DEVICE, 10.0)
            assert (conn.mtu, conn.mtu_by) == ((247, "asked") if dle else (517, None))
            assert await app.radio.read(DEVICE, (await app.characteristic(DEVICE, "2a19")).handle)
    finally:
        await BumbleBackend.stop(backend)
        await virtual.stop()


async def test_bleak_reports_what_the_os_chose(tmp_path):
    # bleak cannot ask for an MTU (BlueZ, CoreBluetooth and WinRT negotiate it): the connect
    # says so, and the plugin's choice is never asked for.
    from tests.backends_under_test import BACKENDS, CONTRACT_WORLD

    async with BACKENDS["bleak"](CONTRACT_WORLD) as but:
        backend = but.backend
        backend.start = backend.stop = _noop
        Borrowed.backend = backend
        toml = 'backend = "borrowed"\nplugins = ["mtu"]\n'
        loaded, catalog = load(write_config(tmp_path, toml), extra_plugins={"b": Borrowed})
        async with BleApp.create(loaded, catalog) as app:
            await app.scan(0.5, ScanFilter())
            conn, _ = await app.connect("C0:FF:EE:00:00:01", 10.0)
            assert conn.mtu_by == "os" and conn.mtu == backend.mtu("C0:FF:EE:00:00:01")
            assert app.mtu_choices is not None and app.mtu_choices.asked == {}


async def test_ble_connect_and_ble_connections_say_how_the_mtu_was_chosen(tmp_path):
    from mcp.client import Client

    from mcp_ble.core.server import build_server

    app = make_app(tmp_path, 'plugins = ["mtu"]', world=world(tmp_path, 251), time_scale=0)
    async with Client(build_server(app)) as client:
        await client.call_tool("ble_scan", {"duration_s": 1})
        connect = await client.call_tool("ble_connect", {"address": DEVICE})
        assert connect.structured_content == {"mtu": 247, "mtu_by": "asked"}
        [link] = (await client.call_tool("ble_connections", {})).structured_content["connections"]
        assert (link["mtu"], link["mtu_by"]) == (247, "asked")


PROBE_WORLD = """
name = "probe"
description = "A device with a 512-byte value, on a DLE link"
seed = 5

[[devices]]
address = "{address}"
name = "Probe Me"
mtu = 517
service_uuids = ["fff0"]

[[devices.services]]
uuid = "fff0"

[[devices.services.characteristics]]
uuid = "fff1"
properties = ["read"]
value = "{value}"

[[devices.services.characteristics]]
uuid = "fff2"
properties = ["read"]
value = "01"
"""
PROBE = "A0:00:00:00:00:09"
CANDIDATES = [23, 185, 247, 517]


def probe_world(tmp_path: Path) -> Path:
    path = tmp_path / "probe.toml"
    path.write_text(PROBE_WORLD.format(address=PROBE, value="ab" * 512))
    return path


def probe_settings() -> str:
    return f'plugins = ["mtu"]\n[mtu]\nprobe = true\ncandidates = {CANDIDATES}\n'


def check_probe(plugin, conn) -> int:
    [plan] = plugin.probes.values()
    measured = plan.measured
    assert sorted(measured) == CANDIDATES, measured
    fastest = max(measured, key=lambda m: measured[m])
    assert plugin.best_for(PROBE) == fastest and conn.mtu == fastest
    assert measured[23] < measured[fastest]
    assert conn.mtu_by == "asked" and conn.notes[-1].startswith("mtu probe (B/s): 23: ")
    return fastest


async def test_probe_keeps_the_fastest_mtu_per_device_on_the_simulated_backend(tmp_path):
    app = make_app(tmp_path, probe_settings(), world=probe_world(tmp_path), time_scale=0)
    async with app:
        plugin = dict(app.plugins)["mtu"]
        await app.scan(1.0, ScanFilter())
        conn, _ = await app.connect(PROBE)
        fastest = check_probe(plugin, conn)
        # A long value: one round trip at 517 (fragmented) beats three at 185-247 here.
        assert fastest == 517
        assert app.radio.link_params(PROBE).mtu == 517
        await app.disconnect(PROBE)
        again, _ = await app.connect(PROBE)  # no probe now: the best is asked for at once
        assert (again.mtu, again.mtu_by) == (fastest, "asked")
        assert not any("probe" in note for note in again.notes)


async def test_probe_keeps_the_fastest_mtu_on_bumble(tmp_path):
    from bumble.link import LocalLink

    from mcp_ble.backends.bumble.backend import BumbleBackend
    from mcp_ble.backends.simulated.world import load_world

    from tests.testbed.link import opener
    from tests.testbed.peripherals import VirtualWorld

    link = LocalLink()
    virtual = await VirtualWorld(load_world(str(probe_world(tmp_path))), link).start()
    backend = BumbleBackend("link:test-bed", open_transport=opener(link, dle=True))
    await backend.start()
    backend.start = backend.stop = _noop
    Borrowed.backend = backend
    try:
        toml = 'backend = "borrowed"\n' + probe_settings()
        loaded, catalog = load(write_config(tmp_path, toml), extra_plugins={"b": Borrowed})
        async with BleApp.create(loaded, catalog) as app:
            await app.scan(1.0, ScanFilter())
            conn, _ = await app.connect(PROBE, 20.0)
            fastest = check_probe(dict(app.plugins)["mtu"], conn)
            assert backend.mtu(PROBE) == fastest
            await app.disconnect(PROBE)
            again, _ = await app.connect(PROBE, 10.0)
            assert again.mtu == fastest
    finally:
        await BumbleBackend.stop(backend)
        await virtual.stop()


def test_a_candidate_that_is_no_mtu_is_refused(tmp_path):
    from mcp_ble.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make_app(tmp_path, 'plugins = ["mtu"]\n[mtu]\nprobe = true\ncandidates = [10, 247]\n')
    assert "[10] are not ATT MTUs" in str(err.value)


async def test_a_failed_connect_leaves_no_choice_behind(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(
        WORLD.format(data_length=251) + "\n[devices.faults]\nconnect_failure_rate = 1.0\n"
    )
    async with make_app(tmp_path, 'plugins = ["mtu"]', world=path, time_scale=0) as app:
        await app.scan(1.0, ScanFilter())
        with pytest.raises(BleError):
            await app.connect(DEVICE)
        assert app.mtu_choices is not None and app.mtu_choices.asked == {}
