"""The bleak backend beyond the contract: MTU re-reads, one connect attempt with typed errors,
adapter selection, pairing, notifications without a task each, fast failure without BlueZ."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from bleak.exc import BleakDBusError, BleakDeviceNotFoundError, BleakError
from bleak_retry_connector import (
    BleakAbortedError,
    BleakConnectionError,
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
)
from bumble.link import LocalLink

from mcp_ble.backends.bleak.backend import BleakBackend
from mcp_ble.backends.bleak.errors import DBUS_SOCKET, connect_error, gatt_error
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleTimeout,
    ConnectionFailed,
    DeviceNotFound,
    GattError,
    OperationInProgress,
    OutOfSlots,
)
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.values import parse_uuid

from tests.backends_under_test import CONTRACT_WORLD
from tests.testbed.bleak_backend import BumbleBleakClient, BumbleCentral, bleak_backends
from tests.testbed.peripherals import VirtualWorld

SENSOR = "C0:FF:EE:00:00:01"
OTHER = "C0:FF:EE:00:00:02"


@contextlib.asynccontextmanager
async def bed(mtu_delay_s: float = 0.05, client_base: type | None = None, **kwargs: Any):
    link = LocalLink()
    world = await VirtualWorld(load_world(str(CONTRACT_WORLD)), link).start()
    central = await BumbleCentral(link).start()
    scanner, client = bleak_backends(central, mtu_delay_s)
    if client_base is not None:
        client = type("Client", (client_base, client), {})
    backend = BleakBackend(scanner_backend=scanner, client_backend=client, **kwargs)
    await backend.start()
    try:
        async for _ in backend.scan(0.2, ScanFilter()):
            pass
        yield backend, world
    finally:
        await backend.stop()
        await central.stop()
        await world.stop()


async def test_mtu_is_re_read_while_bleak_still_reports_20_bytes():
    async with bed(mtu_delay_s=0.3, mtu_wait_s=0.0) as (backend, _):
        await backend.connect(SENSOR, 5)
        assert backend.mtu(SENSOR) == 23  # what bleak reports before the exchange
        for _ in range(500):
            if backend.mtu(SENSOR) != 23:
                break
            await asyncio.sleep(0.01)
        assert backend.mtu(SENSOR) == 247  # re-read: the exchange finished since
    async with bed(mtu_delay_s=0.3, mtu_wait_s=30.0) as (backend, _):
        started = time.monotonic()
        await backend.connect(SENSOR, 60)
        assert backend.mtu(SENSOR) == 247  # connect waited for the exchange
        # ... and only for it (0.3 s), not for the 30 s it would wait at most
        assert time.monotonic() - started < 10


class FailingClient(BumbleBleakClient):
    attempts = 0
    error: BaseException = BleakError("le-connection-abort-by-local")

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        FailingClient.attempts += 1
        raise FailingClient.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (BleakError("le-connection-abort-by-local"), ConnectionFailed),
        (BleakError("no available connection slot"), OutOfSlots),
        (BleakDeviceNotFoundError(SENSOR, "not on the bus"), DeviceNotFound),
    ],
)
async def test_connect_makes_one_attempt_and_types_the_error(error, expected):
    FailingClient.attempts = 0
    FailingClient.error = error
    async with bed(client_base=FailingClient) as (backend, _):
        started = time.monotonic()
        with pytest.raises(expected) as raised:
            await backend.connect(SENSOR, 1.0)
        assert FailingClient.attempts == 1  # bleak-retry-connector did not retry
        # the 1 s deadline held (its retries with backoff would take several times longer)
        assert time.monotonic() - started < 5
        assert SENSOR in str(raised.value)
        if expected is ConnectionFailed:
            # bleak-retry-connector waited for the aborted link to go down before giving up;
            # the error says so, and the retry plugin subtracts it from its own backoff
            assert 0.1 < raised.value.waited_s < 1.0


def test_retry_connector_errors_map_to_retry_kinds():
    timeout = BleakNotFoundError("gave up")
    timeout.__cause__ = TimeoutError()
    cases = [
        (BleakOutOfConnectionSlotsError("slots"), OutOfSlots, "backoff"),
        (BleakNotFoundError("gone"), DeviceNotFound, "backoff"),
        (timeout, BleTimeout, "timeout"),
        (BleakAbortedError("aborted"), ConnectionFailed, "transient"),
        (BleakConnectionError("failed"), ConnectionFailed, "transient"),
    ]
    for exc, cls, kind in cases:
        mapped = connect_error(exc, SENSOR, 5)
        assert type(mapped) is cls and mapped.kind == kind, exc


def test_bluez_errors_map_to_gatt_errors():
    def dbus(name: str, details: str) -> BleakDBusError:
        return BleakDBusError(name, [details])

    cases = [
        (dbus("org.bluez.Error.NotPermitted", "Read not permitted"), 0x02),
        (dbus("org.bluez.Error.NotPermitted", "Write not permitted"), 0x03),
        (dbus("org.bluez.Error.InvalidValueLength", "Invalid Length"), 0x0D),
        (dbus("org.bluez.Error.Failed", "Operation failed with ATT error: 0x0e"), 0x0E),
    ]
    for exc, code in cases:
        mapped = gatt_error(exc, SENSOR, "read")
        assert isinstance(mapped, GattError) and mapped.att_code == code
    busy = gatt_error(dbus("org.bluez.Error.InProgress", "busy"), SENSOR, "read")
    assert isinstance(busy, OperationInProgress) and busy.kind == "transient"
    lost = gatt_error(BleakError("Not connected"), SENSOR, "read")
    assert isinstance(lost, ConnectionFailed)


async def test_adapter_and_service_filter_reach_bleak():
    link = LocalLink()
    world = await VirtualWorld(load_world(str(CONTRACT_WORLD)), link).start()
    central = await BumbleCentral(link).start()
    scanner, client = bleak_backends(central)
    seen: list[tuple[Any, dict[str, Any]]] = []

    class Recording(scanner):  # type: ignore[misc, valid-type]
        def __init__(self, detection_callback, service_uuids, scanning_mode="active", **kw):
            seen.append((service_uuids, kw))
            super().__init__(detection_callback, service_uuids, scanning_mode, **kw)

    backend = BleakBackend("hci1", scanner_backend=Recording, client_backend=client)
    try:
        await backend.start()
        heard = {
            a.address async for a in backend.scan(0.3, ScanFilter(service_uuid=parse_uuid("180d")))
        }
        assert heard == {OTHER}  # bleak filtered by service UUID in the scanner
        assert seen[-1][0] == [parse_uuid("180d")]
        assert all(kw.get("bluez") == {"adapter": "hci1"} for _, kw in seen)
        assert backend.info().details["adapter"] == "hci1"
    finally:
        await backend.stop()
        await central.stop()
        await world.stop()


async def test_pairing_encrypts_the_link():
    async with bed() as (backend, world):
        await backend.connect(SENSOR, 5)
        await backend.pair(SENSOR)
        [connection] = world.peripherals[SENSOR].device.connections.values()
        assert connection.is_encrypted


async def test_notifications_reach_the_core_without_a_task_each():
    async with bed() as (backend, _):
        await backend.connect(OTHER, 5)
        services = await backend.discover(OTHER)
        hrm = next(c for s in services for c in s.characteristics if c.uuid == parse_uuid("2a37"))
        loop = asyncio.get_running_loop()
        created = 0
        factory = loop.get_task_factory()

        def counting(loop_: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            nonlocal created
            created += 1
            return asyncio.Task(coro, loop=loop_, **kwargs)

        received: list[bytes] = []
        ten = asyncio.Event()

        def on_data(data: bytes) -> None:
            received.append(data)
            if len(received) == 10:
                ten.set()

        await backend.start_notify(OTHER, hrm.handle, on_data)
        loop.set_task_factory(counting)
        try:
            await asyncio.wait_for(ten.wait(), 5)
        finally:
            loop.set_task_factory(factory)
        # The peripheral's notifier is one long-lived task; delivery adds none per notification.
        assert created < 3, created
        await backend.stop_notify(OTHER, hrm.handle)


@pytest.mark.skipif(DBUS_SOCKET.exists(), reason="this machine has a D-Bus system bus")
async def test_without_dbus_start_fails_fast_with_a_fix():
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as raised:
        await BleakBackend(start_timeout_s=60).start()
    assert time.monotonic() - started < 10  # known at once, not after the 60 s start deadline
    message = str(raised.value)
    assert message.startswith("The bleak backend cannot start")
    assert "D-Bus" in message and "simulated" in message
