"""Radio health: the state machine, the core's reaction to a lost radio, and how the bleak and
simplepyble backends tell a gone adapter from a failed operation. (Over real HCI between
processes, for bumble and bleak, see test_faults_tcp.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)
from bumble.link import LocalLink
from mcp.client import Client

from mcp_ble.backends.bleak.errors import radio_gone as bleak_radio_gone
from mcp_ble.backends.bumble.backend import BumbleBackend
from mcp_ble.backends.simplepyble.errors import radio_gone as simplepyble_radio_gone
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core import radio
from mcp_ble.core.app import BleApp
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.radio import RadioHealth
from mcp_ble.core.server import build_server

from tests.backends_under_test import CONTRACT_WORLD
from tests.helpers import failure, load, make_app, ok, write_config
from tests.testbed.link import opener
from tests.testbed.peripherals import VirtualWorld

HRM = "C4:7C:8D:6A:12:01"
SENSOR = "C0:FF:EE:00:00:01"


async def test_lost_radio_is_reacquired_with_backoff():
    health = RadioHealth()
    seen: list[tuple[str, str]] = []
    health.listeners.append(lambda state, reason: seen.append((state, reason)))
    waits: list[float] = []
    tries = 0
    back = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def reacquire() -> None:
        nonlocal tries
        tries += 1
        if tries < 6:
            raise OSError("connection refused")
        back.set()

    signal = health.wait_lost()
    health.lost("transport closed", reacquire, sleep)
    health.lost("reported twice", reacquire, sleep)  # the same loss: no second recovery
    assert signal.done() and signal.result() == "transport closed"
    error = health.unavailable()
    assert error.code == "backend_unavailable" and "transport closed" in str(error)
    await asyncio.wait_for(back.wait(), 5)
    await asyncio.sleep(0)
    assert health.ready and health.losses == 1 and tries == 6
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert [s for s, _ in seen] == ["lost", "recovering", "ready"]
    assert not health.wait_lost().done()  # a fresh signal for the next loss


async def test_the_core_fails_fast_and_ends_links_while_the_radio_is_lost(tmp_path, monkeypatch):
    monkeypatch.setattr(radio, "RECOVERY_FIRST_S", 0.01)
    app = make_app(tmp_path, 'plugins = ["metrics"]')
    async with Client(build_server(app)) as client:
        await ok(client, "ble_scan", duration_s=2.0)
        await ok(client, "ble_connect", address=HRM)
        await ok(client, "ble_subscribe", address=HRM, characteristic="2a37")
        backend = app.radio
        present = asyncio.Event()

        async def reacquire() -> None:
            if not present.is_set():
                raise OSError("no adapter")

        monkeypatch.setattr(backend, "reacquire", reacquire)
        backend.radio_lost("adapter removed")
        status = await ok(client, "ble_status")
        assert status["radio"].endswith("adapter removed") and status["connections"] == 0
        for tool, args in (
            ("ble_read", {"address": HRM, "characteristic": "2a19"}),
            ("ble_connect", {"address": HRM}),
            ("ble_scan", {"duration_s": 30.0}),
        ):
            # Waiting would take the operation's 10 s deadline or the 30 s scan; failing fast
            # takes a small fraction of that even on a loaded machine.
            started = time.monotonic()
            text, info = await failure(client, tool, **args)
            assert info["code"] == "backend_unavailable", text
            assert time.monotonic() - started < 5.0
        ended = await ok(client, "ble_notifications", address=HRM, characteristic="2a37")
        assert ended["ended"] == "radio lost: adapter removed"

        present.set()
        for _ in range(200):
            if (await ok(client, "ble_status"))["radio"] == "ready":
                break
            await asyncio.sleep(0.01)
        assert (await ok(client, "ble_status"))["radio"] == "ready"
        again = await ok(client, "ble_connect", address=HRM)
        assert "already_connected" not in again


@pytest.mark.parametrize(
    "exc",
    [
        BleakBluetoothNotAvailableError(
            "No Bluetooth adapters found.", BleakBluetoothNotAvailableReason.NO_BLUETOOTH
        ),
        FileNotFoundError(2, "No such file", "/run/dbus/system_bus_socket"),
        EOFError(),
        BleakError("adapter 'hci1' not found"),
        BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]),
    ],
    ids=["no-adapter", "no-dbus", "dbus-eof", "adapter-removed", "powered-off"],
)
def test_bleak_failures_that_mean_the_radio_is_gone(exc):
    assert bleak_radio_gone(exc) is not None


@pytest.mark.parametrize(
    "exc",
    [
        BleakError("Not connected"),
        BleakDBusError("org.bluez.Error.InProgress", []),
        TimeoutError(),
        BleakDBusError("org.bluez.Error.Failed", ["Operation failed with ATT error: 0x0e"]),
    ],
    ids=["link", "in-progress", "timeout", "att"],
)
def test_bleak_failures_of_one_operation_are_not_a_lost_radio(exc):
    assert bleak_radio_gone(exc) is None


def test_simplepyble_failures_that_mean_the_radio_is_gone():
    gone = RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown: org.bluez was not provided")
    assert simplepyble_radio_gone(gone) is not None
    assert simplepyble_radio_gone(RuntimeError("org.bluez.Error.NotReady: Resource Not Ready"))
    assert simplepyble_radio_gone(RuntimeError("org.bluez.Error.Failed: Not connected")) is None
    assert simplepyble_radio_gone(RuntimeError("ATT error: 0x0e")) is None


class _TestBed:
    link: LocalLink | None = None

    @hookimpl
    def mcp_ble_register_backends(self, register):
        register(
            "bumble-testbed",
            lambda settings, app: BumbleBackend(
                "link:test-bed", open_transport=opener(_TestBed.link)
            ),
        )


async def test_a_link_the_radio_no_longer_has_is_not_reported_connected(tmp_path):
    """A link lost without a report (a backend that missed the event) is checked with the
    backend before ble_connect calls it 'already connected': a new link is made instead."""
    _TestBed.link = LocalLink()
    world = await VirtualWorld(load_world(str(CONTRACT_WORLD)), _TestBed.link).start()
    try:
        config = write_config(tmp_path, 'backend = "bumble-testbed"\nplugins = []\n')
        loaded, catalog = load(config, extra_plugins={"testbed": _TestBed})
        app = BleApp.create(loaded, catalog)
        async with Client(build_server(app)) as client:
            await ok(client, "ble_scan", duration_s=1.0)
            await ok(client, "ble_connect", address=SENSOR)
            app.radio.on_disconnect = lambda address, reason: None  # the report goes missing
            await world.drop_link(SENSOR)
            for _ in range(100):
                if not app.radio.is_connected(SENSOR):
                    break
                await asyncio.sleep(0.01)
            again = await ok(client, "ble_connect", address=SENSOR)
            assert "mtu" in again and "already_connected" not in again
            await ok(client, "ble_services", address=SENSOR)
    finally:
        await world.stop()


async def test_a_world_can_unplug_the_simulated_adapter(tmp_path):
    """``[link] radio_lost_at_s`` / ``radio_back_at_s``: the simulated radio is lost and comes
    back on the simulated clock, and the server rides through it like on a real radio."""
    world = tmp_path / "world.toml"
    world.write_text(
        'name = "unplugged"\n[link]\nradio_lost_at_s = 100.0\nradio_back_at_s = 150.0\n'
        '[[devices]]\naddress = "C0:FF:EE:00:00:09"\nname = "Dot"\nadv_interval_ms = 100\n'
        '[[devices.services]]\nuuid = "180f"\n'
        '[[devices.services.characteristics]]\nuuid = "2a19"\nproperties = ["read"]\n'
        'value = "2a"\n',
        encoding="utf-8",
    )
    app = make_app(tmp_path, "plugins = []", world=world, time_scale=0.01)
    async with Client(build_server(app)) as client:
        await ok(client, "ble_scan", duration_s=1.0)
        await ok(client, "ble_connect", address="C0:FF:EE:00:00:09")
        states: list[str] = []
        refused = 0
        for _ in range(2000):
            state = (await ok(client, "ble_status"))["radio"].split(":")[0]
            if state == "ready" and len(states) > 1:
                break  # lost, then back
            if not states or states[-1] != state:
                states.append(state)
            if state != "ready":
                text, info = await failure(
                    client, "ble_read", address="C0:FF:EE:00:00:09", characteristic="2a19"
                )
                # The radio is lost once: still lost after the read, the read fell inside the
                # outage. Back by then (the scaled clock ran on: a loaded machine), the read
                # may have come after the return, and the link the loss ended stays gone.
                after = (await ok(client, "ble_status"))["radio"].split(":")[0]
                if after != "ready":
                    assert info["code"] == "backend_unavailable", text
                    refused += 1
                else:
                    assert info["code"] in ("backend_unavailable", "not_connected"), text
            await asyncio.sleep(0.005)
        assert refused >= 1
        assert states[0] == "ready" and states[1] in ("lost", "recovering"), states
        assert app.radio.now() >= 150.0
        assert (await ok(client, "ble_connections"))["connections"] == []
        await ok(client, "ble_connect", address="C0:FF:EE:00:00:09")
        value = await ok(client, "ble_read", address="C0:FF:EE:00:00:09", characteristic="2a19")
        assert value["hex"] == "2a"
