"""ble_connect to an address this server has not heard yet: the core scans for that one address
(inside the connect timeout, ending the moment it is heard) and connects. An address that is
never heard is device_not_found, as before. On the simulated backend (virtual clock) and on the
bumble backend speaking real HCI/ATT to the test bed's peripherals."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from bumble.link import LocalLink
from mcp.client import Client

from mcp_ble.backends.bumble.backend import BumbleBackend
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.app import BleApp
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.server import build_server

from tests.backends_under_test import CONTRACT_WORLD
from tests.helpers import failure, load, make_app, ok, write_config
from tests.testbed.link import opener
from tests.testbed.peripherals import VirtualWorld

NEVER_HEARD = "AA:BB:CC:DD:EE:FF"


class TestBedLink:
    """Registers the production bumble backend on a test-bed LocalLink."""

    link: LocalLink | None = None

    @hookimpl
    def mcp_ble_register_backends(self, register):
        register(
            "bumble-testbed",
            lambda settings, app: BumbleBackend("link:test-bed", open_transport=opener(self.link)),
        )


@dataclass
class Served:
    client: Client
    app: BleApp
    address: str  # a connectable device of the world
    battery: int  # its battery level


@contextlib.asynccontextmanager
async def served(backend: str, tmp_path: Any) -> AsyncIterator[Served]:
    if backend == "simulated":
        async with make_app(tmp_path, 'plugins = ["sig"]', time_scale=0) as app:
            async with Client(build_server(app)) as client:
                yield Served(client, app, "C4:7C:8D:6A:12:01", 87)
        return
    TestBedLink.link = LocalLink()
    world = await VirtualWorld(load_world(str(CONTRACT_WORLD)), TestBedLink.link).start()
    try:
        config = write_config(tmp_path, 'backend = "bumble-testbed"\nplugins = ["sig"]\n')
        loaded, catalog = load(config, extra_plugins={"testbed": TestBedLink})
        async with BleApp.create(loaded, catalog) as app:
            async with Client(build_server(app)) as client:
                yield Served(client, app, "C0:FF:EE:00:00:01", 85)
    finally:
        await world.stop()


@pytest.fixture(params=["simulated", "bumble"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_connect_by_address_without_a_prior_scan(backend, tmp_path):
    async with served(backend, tmp_path) as s:
        assert s.app.tracker.get(s.address) is None  # nothing scanned in this server's life
        conn = await ok(s.client, "ble_connect", address=s.address, timeout_s=10)
        assert conn["mtu"] >= 23 and s.address in s.app.connections
        assert any("found by a" in note for note in conn.get("notes", [])), conn
        read = await ok(s.client, "ble_read", address=s.address, characteristic="2a19")
        assert str(s.battery) in str(read)
        assert s.app.scans_run == 1


async def test_an_address_never_heard_is_device_not_found(backend, tmp_path):
    async with served(backend, tmp_path) as s:
        clock = s.app.radio.now
        start = clock()
        text, info = await failure(s.client, "ble_connect", address=NEVER_HEARD, timeout_s=1)
        assert info["code"] == "device_not_found"
        assert f"No device with address {NEVER_HEARD} was heard in a 0.5 s scan" in text
        assert "advertising and in range" in text
        # The scan took half the timeout on the backend's clock, then gave up.
        assert 0.5 <= clock() - start < 1.0
        # The server keeps serving: the same address is refused the same way, others connect.
        again, _ = await failure(s.client, "ble_connect", address=NEVER_HEARD, timeout_s=1)
        assert again == text
        await ok(s.client, "ble_connect", address=s.address)


async def test_an_unscanned_beacon_is_found_and_refused(tmp_path):
    async with served("simulated", tmp_path) as s:
        _, info = await failure(s.client, "ble_connect", address="D0:39:72:A1:B4:2F")
        assert info["code"] == "not_permitted"


async def test_a_known_address_connects_without_scanning(tmp_path):
    async with served("simulated", tmp_path) as s:
        await ok(s.client, "ble_scan", duration_s=1.0, name="HRM")
        scans = s.app.scans_run
        conn = await ok(s.client, "ble_connect", address=s.address)
        assert s.app.scans_run == scans
        assert not any("found by" in note for note in conn.get("notes", []))
