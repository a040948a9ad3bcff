"""The simplepyble backend beyond the contract: blocking calls off the loop, native callbacks
handed over safely and bounded, start failures explained, the extra optional."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import pytest

from mcp_ble.backends.simplepyble import INSTALL_HINT, SimplepybleSettings, _create
from mcp_ble.backends.simplepyble.backend import SimplepybleBackend
from mcp_ble.backends.simplepyble.errors import operation_error
from mcp_ble.backends.simplepyble.handoff import ThreadHandoff
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleTimeout,
    ConnectionFailed,
    GattError,
    OperationInProgress,
)
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.values import parse_uuid

from tests.backends_under_test import CONTRACT_WORLD
from tests.testbed.fake_simplepyble import FakeSimplepyble

SENSOR = "C0:FF:EE:00:00:01"


def test_without_the_extra_selecting_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "simplepyble", None)
    with pytest.raises(BackendUnavailable) as raised:
        _create(SimplepybleSettings(), None)
    assert "not installed" in str(raised.value)
    assert INSTALL_HINT[1:] in str(raised.value)


class Module:
    """A minimal simplepyble module whose adapters are given by the test."""

    def __init__(self, get_adapters: Any, enabled: bool = True) -> None:
        class Adapter:
            bluetooth_enabled = staticmethod(lambda: enabled)

        Adapter.get_adapters = staticmethod(get_adapters)  # type: ignore[attr-defined]
        self.Adapter = Adapter


BLOCKED = threading.Event()  # a stack call that does not answer waits on it


def no_dbus() -> list[Any]:
    raise RuntimeError("org.freedesktop.DBus.Error.FileNotFound: Failed to connect to socket")


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (Module(no_dbus), "D-Bus"),
        (Module(lambda: []), "no Bluetooth adapter"),
        (Module(lambda: [object()]), "adapter index 3 does not exist"),
        (Module(lambda: [], enabled=False), "turned off"),
        (Module(lambda: BLOCKED.wait(10)), "did not answer within 0.2 s"),
    ],
)
async def test_start_failures_are_explained_and_bounded(module, expected):
    backend = SimplepybleBackend(module, adapter_index=3, start_timeout_s=0.2)
    BLOCKED.clear()
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await backend.start()
        # A stack that does not answer blocks 10 s; the 0.2 s deadline ends start long before.
        assert time.monotonic() - started < 5.0
    finally:
        BLOCKED.set()
    assert expected in str(raised.value)
    assert str(raised.value).startswith("The simplepyble backend cannot start")


def test_simpleble_error_text_maps_to_our_errors():
    cases = {
        "org.bluez.Error.NotPermitted: Read not permitted": 0x02,
        "org.bluez.Error.NotPermitted: Write not permitted": 0x03,
        "org.bluez.Error.InvalidValueLength: Invalid Length": 0x0D,
        "org.bluez.Error.Failed: Operation failed with ATT error: 0x0e": 0x0E,
    }
    for text, code in cases.items():
        mapped = operation_error(RuntimeError(text), SENSOR, "read")
        assert isinstance(mapped, GattError) and mapped.att_code == code
    busy = operation_error(RuntimeError("org.bluez.Error.InProgress"), SENSOR, "read")
    assert isinstance(busy, OperationInProgress)
    lost = operation_error(RuntimeError("Not connected"), SENSOR, "read")
    assert isinstance(lost, ConnectionFailed)


async def test_handoff_is_bounded_ordered_and_wakes_the_loop_once_per_burst():
    loop = asyncio.get_running_loop()
    got: list[int] = []
    handoff: ThreadHandoff[int] = ThreadHandoff(loop, got.append, capacity=100)
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        storm = threading.Thread(target=lambda: [handoff.put(i) for i in range(10_000)])
        storm.start()
        storm.join()
        await asyncio.sleep(0.01)
    finally:
        del loop.call_soon_threadsafe
    assert got == list(range(100))  # in order; the rest of the storm waited on a full buffer
    assert handoff.dropped == 10_000 - 100
    assert wakeups == 1


@pytest.fixture
async def fake():
    module = await asyncio.to_thread(FakeSimplepyble(load_world(str(CONTRACT_WORLD))).start)
    yield module
    await asyncio.to_thread(module.stop)


async def test_blocking_calls_run_off_the_loop_and_callbacks_arrive_on_it(fake):
    backend = SimplepybleBackend(fake)
    await backend.start()
    try:
        async for _ in backend.scan(0.3, ScanFilter()):
            pass
        await backend.connect(SENSOR, 5)
        services = await backend.discover(SENSOR)
        chars = {c.uuid: c for s in services for c in s.characteristics}
        peripheral = backend._links[SENSOR].peripheral
        loop_thread = threading.current_thread()
        read_threads: list[threading.Thread] = []
        original = peripheral.read

        def read(*args: Any) -> bytes:
            read_threads.append(threading.current_thread())
            return original(*args)

        peripheral.read = read
        assert await backend.read(SENSOR, chars[parse_uuid("2a19")].handle) == b"\x55"
        assert read_threads and read_threads[0] is not loop_thread

        callback_threads: list[threading.Thread] = []
        got = asyncio.Event()

        def on_data(data: bytes) -> None:
            callback_threads.append(threading.current_thread())
            got.set()

        tx = chars[parse_uuid("6e400003-b5a3-f393-e0a9-e50e24dcca9e")].handle
        rx = chars[parse_uuid("6e400002-b5a3-f393-e0a9-e50e24dcca9e")].handle
        await backend.start_notify(SENSOR, tx, on_data)
        await backend.write(SENSOR, rx, b"ping", True)
        await asyncio.wait_for(got.wait(), 5)
        assert callback_threads == [loop_thread]  # SimpleBLE's thread handed it to the loop
        assert backend.mtu(SENSOR) == 247  # SimpleBLE's mtu() is the payload: ATT MTU - 3
    finally:
        await backend.stop()


async def test_a_connect_that_blocks_past_its_timeout_is_undone(fake):
    backend = SimplepybleBackend(fake)
    await backend.start()
    try:
        async for _ in backend.scan(0.3, ScanFilter()):
            pass
        peripheral = backend._peripherals[SENSOR]
        original = peripheral.connect
        release, finished = threading.Event(), threading.Event()

        def blocking_connect() -> None:
            release.wait(10)
            original()
            finished.set()

        peripheral.connect = blocking_connect
        # The timeout ends the call while the native connect is still blocked (no wall clock).
        with pytest.raises(BleTimeout):
            await backend.connect(SENSOR, 0.2)
        assert not finished.is_set()
        release.set()
        await asyncio.to_thread(finished.wait, 10)
        assert finished.is_set()
        for _ in range(500):  # the native connect finished late and is disconnected again
            if not peripheral.is_connected():
                break
            await asyncio.sleep(0.01)
        assert not peripheral.is_connected()
    finally:
        await backend.stop()


async def test_a_gone_bluez_is_a_lost_radio_that_is_reacquired(fake, monkeypatch):
    """BlueZ going away mid-session (SimpleBLE's D-Bus error text) marks the radio lost, drops
    the links, and the backend takes the adapter again once BlueZ answers."""
    from mcp_ble.core import radio

    monkeypatch.setattr(radio, "RECOVERY_FIRST_S", 0.01)
    backend = SimplepybleBackend(fake)
    await backend.start()
    try:
        async for _ in backend.scan(0.3, ScanFilter()):
            pass
        await backend.connect(SENSOR, 5)
        gone = "org.freedesktop.DBus.Error.ServiceUnknown: The name org.bluez was not provided"
        present = threading.Event()
        real_scan_start = fake.Adapter.scan_start
        real_get_adapters = fake.Adapter.get_adapters

        def scan_start(self: Any) -> None:
            if not present.is_set():
                raise RuntimeError(gone)
            real_scan_start(self)

        def get_adapters() -> Any:
            if not present.is_set():
                raise RuntimeError(gone)
            return real_get_adapters()

        monkeypatch.setattr(fake.Adapter, "scan_start", scan_start)
        monkeypatch.setattr(fake.Adapter, "get_adapters", staticmethod(get_adapters))
        with pytest.raises(BackendUnavailable, match="BlueZ is gone"):
            async for _ in backend.scan(0.3, ScanFilter()):
                pass
        assert backend.health.state in ("lost", "recovering")
        assert not backend.is_connected(SENSOR)
        present.set()
        for _ in range(300):
            if backend.health.ready:
                break
            await asyncio.sleep(0.01)
        assert backend.health.ready
        async for _ in backend.scan(0.3, ScanFilter()):
            pass
    finally:
        await backend.health.close()
        await backend.stop()
