"""Faults over real HCI between processes, through the MCP client, for bumble and for bleak.

``bumble.apps.controllers`` runs two virtual controllers on one link in its own process; a
virtual peripheral (``fault_peripheral.py``, bumble's heart rate, battery and device information
profiles) opens one, the server under test the other. The server runs the production bumble
backend on ``tcp-client:127.0.0.1:PORT``, or the production bleak backend on test-only bleak
classes whose bumble central opens that same port. Then the radio, the device and the controller
fail for real: the controllers process is killed (an unplugged dongle) and started again, the
peripheral process is killed (a device that vanished), the controllers process is stopped with
SIGSTOP (a controller that stops answering).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from mcp.client import Client
from prometheus_client.parser import text_string_to_metric_families

from mcp_ble.core import radio
from mcp_ble.core.app import BleApp
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.server import build_server

from tests.faultbed import PERIPHERAL_ADDRESS, Controllers, Process, free_port, peripheral
from tests.helpers import failure, load, ok, write_config

DEVICE = PERIPHERAL_ADDRESS
BATTERY = "2a19"
HEART_RATE = "2a37"
REBOOT = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
#: The bumble backend's ATT transaction timeout here (the spec's 30 s would slow the suite).
ATT_TIMEOUT_S = 1.0
#: The operation deadline; bleak has no ATT timeout of its own to set, so it meets this one.
OPERATION_TIMEOUT_S = 2.0


class BleakOverTcp:
    """Registers the production bleak backend on test-only bleak classes bound to a bumble
    central on the TCP HCI port (bleak's ``backend=`` arguments)."""

    classes: tuple[type, type] | None = None

    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        from mcp_ble.backends.bleak.backend import BleakBackend

        def create(settings: Any, app: Any) -> Any:
            assert BleakOverTcp.classes is not None
            scanner, client = BleakOverTcp.classes
            return BleakBackend(scanner_backend=scanner, client_backend=client, start_timeout_s=2.0)

        register("bleak-tcp", create)


@dataclass
class Bed:
    client: Client
    app: BleApp
    controllers: Controllers
    peripheral: Process
    port_a: int
    port_b: int
    #: Every process started for this test, replacements included: teardown kills them all.
    processes: list[Process]

    def restart_controllers(self) -> None:
        self.controllers = Controllers(self.port_a, self.port_b)
        self.processes.append(self.controllers)
        self.controllers.start()

    def restart_peripheral(self) -> None:
        self.peripheral = peripheral(self.port_a)
        self.processes.append(self.peripheral)
        self.peripheral.start()


async def fails(client: Client, tool: str, code: str, **args: Any) -> tuple[str, float]:
    """Call a tool that must fail with ``code``; return its text and the seconds it took."""
    started = time.monotonic()
    text, info = await failure(client, tool, **args)
    took = time.monotonic() - started
    assert info["code"] == code, text
    return text, took


async def eventually(check: Any, timeout_s: float = 15.0) -> Any:
    end = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def bed(tmp_path: Any, backend: str) -> AsyncIterator[Bed]:
    port_a, port_b = free_port(), free_port()
    controllers = Controllers(port_a, port_b)
    device = peripheral(port_a)
    processes: list[Process] = [controllers, device]
    central: Any = None
    try:
        Process.start(controllers)  # both start at once: the peripheral retries until A listens
        device.start()
        controllers.wait_listening()
        device.wait_for_line("advertising")
        server = (
            f'plugins = ["metrics", "sig"]\n'
            f"[server]\noperation_timeout_s = {OPERATION_TIMEOUT_S}\n"
            'scan_duration_s = 1.0\nwrite_policy = "open"\n'
        )
        if backend == "bumble":
            text = (
                f'backend = "bumble"\n{server}[backends.bumble]\n'
                f'transport = "tcp-client:127.0.0.1:{port_b}"\natt_timeout_s = {ATT_TIMEOUT_S}\n'
            )
            loaded, catalog = load(write_config(tmp_path, text))
        else:
            from tests.testbed.bleak_backend import BumbleCentral, bleak_backends

            central = await BumbleCentral(
                None, "F0:00:00:00:00:02", f"tcp-client:127.0.0.1:{port_b}"
            ).start()
            BleakOverTcp.classes = bleak_backends(central)
            text = f'backend = "bleak-tcp"\n{server}'
            loaded, catalog = load(
                write_config(tmp_path, text), extra_plugins={"bleak-tcp": BleakOverTcp}
            )
        app = BleApp.create(loaded, catalog)
        async with Client(build_server(app)) as client:
            yield Bed(client, app, controllers, device, port_a, port_b, processes)
    finally:
        if central is not None:
            await central.close()
        for process in processes:
            process.stop()


async def connected(b: Bed, **args: Any) -> dict[str, Any]:
    scan = await ok(b.client, "ble_scan", duration_s=0.5)
    assert DEVICE in {d["address"] for d in scan["devices"]}, scan
    return await ok(b.client, "ble_connect", address=DEVICE, **args)


async def radio_gauge(client: Client) -> dict[str, float]:
    text = (await client.read_resource("ble://metrics")).contents[0].text
    for family in text_string_to_metric_families(text):
        if family.name == "ble_radio_state":
            return {s.labels["state"]: s.value for s in family.samples}
    raise AssertionError("no ble_radio_state gauge")


BACKENDS = ["bumble", "bleak"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_radio_lost_fails_fast_and_comes_back(tmp_path, backend, monkeypatch):
    monkeypatch.setattr(radio, "RECOVERY_MAX_S", 0.5)  # the default backoff, capped sooner
    async with bed(tmp_path, backend) as b:
        c = b.client
        assert (await ok(c, "ble_status"))["radio"] == "ready"
        assert (await radio_gauge(c))["ready"] == 1
        await connected(b)
        await ok(c, "ble_subscribe", address=DEVICE, characteristic=HEART_RATE)

        b.controllers.stop()  # the dongle is unplugged
        status = await eventually(
            lambda: _status_if(c, lambda s: s["radio"] != "ready"), timeout_s=5
        )
        assert status["connections"] == 0 and status["subscriptions"] == 0
        assert status["radio"].split(":")[0] in ("lost", "recovering")
        assert (await radio_gauge(c))["ready"] == 0
        for tool, args in (
            ("ble_read", {"address": DEVICE, "characteristic": BATTERY}),
            ("ble_scan", {"duration_s": 1.0}),
            ("ble_connect", {"address": DEVICE}),
        ):
            message, took = await fails(c, tool, "backend_unavailable", **args)
            assert took < 0.5, (tool, took)
            assert "ble_status" in message
        ended = await ok(c, "ble_notifications", address=DEVICE, characteristic=HEART_RATE)
        assert ended["ended"].startswith("radio lost"), ended

        b.restart_controllers()  # plugged back in
        await eventually(lambda: _status_if(c, lambda s: s["radio"] == "ready"))
        assert (await radio_gauge(c))["ready"] == 1
        b.peripheral.wait_for_line("advertising", count=2)  # the device found its radio too
        again = await connected(b)
        assert "mtu" in again and "already_connected" not in again
        value = await ok(c, "ble_read", address=DEVICE, characteristic=BATTERY)
        assert value == {"hex": "57", "battery_level_percent": 87}


async def _status_if(client: Client, condition: Any) -> dict[str, Any] | None:
    status = await ok(client, "ble_status")
    return status if condition(status) else None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_vanished_device_times_out_and_its_link_is_closed(tmp_path, backend):
    async with bed(tmp_path, backend) as b:
        c = b.client
        await connected(b)
        await ok(c, "ble_read", address=DEVICE, characteristic=BATTERY)
        await ok(c, "ble_subscribe", address=DEVICE, characteristic=HEART_RATE)

        b.peripheral.stop()  # the device vanished; the virtual controller keeps the link up
        message, took = await fails(
            c, "ble_read", "timeout", address=DEVICE, characteristic=BATTERY
        )
        limit = ATT_TIMEOUT_S if backend == "bumble" else OPERATION_TIMEOUT_S
        assert took < limit + 0.5, took
        assert "link was closed" in message and "ble_connect" in message
        assert (await ok(c, "ble_connections"))["connections"] == []
        ended = await ok(c, "ble_notifications", address=DEVICE, characteristic=HEART_RATE)
        assert "no ATT response" in ended["ended"], ended
        await fails(c, "ble_read", "not_connected", address=DEVICE, characteristic=BATTERY)

        b.restart_peripheral()  # it comes back
        b.peripheral.wait_for_line("advertising")
        fresh = await ok(c, "ble_connect", address=DEVICE, timeout_s=5)
        assert "mtu" in fresh and "already_connected" not in fresh
        value = await ok(c, "ble_read", address=DEVICE, characteristic=BATTERY)
        assert value == {"hex": "57", "battery_level_percent": 87}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_deadlines_hold_when_the_controller_stops_answering(tmp_path, backend):
    async with bed(tmp_path, backend) as b:
        c = b.client
        await connected(b)
        await ok(c, "ble_read", address=DEVICE, characteristic=BATTERY)
        b.controllers.signal(signal.SIGSTOP)
        try:
            _, took = await fails(c, "ble_read", "timeout", address=DEVICE, characteristic=BATTERY)
            assert took < OPERATION_TIMEOUT_S + 0.5, took
            assert (await ok(c, "ble_connections"))["connections"] == []  # the link was closed
            _, took = await fails(c, "ble_connect", "timeout", address=DEVICE, timeout_s=3)
            assert took < 3.5, took
            _, took = await fails(c, "ble_scan", "timeout", duration_s=1.0)
            assert took < 1.5, took
        finally:
            b.controllers.signal(signal.SIGCONT)
        # What was abandoned winds down in the background; the server goes on.
        again = await ok(c, "ble_connect", address=DEVICE, timeout_s=10)
        assert "mtu" in again and "already_connected" not in again
        await ok(c, "ble_read", address=DEVICE, characteristic=BATTERY)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_write_acknowledged_before_the_link_drops_is_reported_done(tmp_path, backend):
    """The device acknowledges the write, then drops the link at once (a reboot command): the
    write was delivered, so it is reported done, every time."""
    async with bed(tmp_path, backend) as b:
        c = b.client
        await connected(b)
        for i in range(20):
            if i:
                fresh = await ok(c, "ble_connect", address=DEVICE, timeout_s=5)
                assert "already_connected" not in fresh
            done = await ok(c, "ble_write", address=DEVICE, characteristic=REBOOT, value=f"{i:02x}")
            assert done == {"bytes": 1, "with_response": True}
            # the drop shows on later calls, once the link is gone
            await eventually(_links_gone(c), timeout_s=5)
        b.peripheral.wait_for_line("write", count=20)
        assert [line for line in b.peripheral.lines if line.startswith("write")] == [
            f"write {i:02x}" for i in range(20)
        ]


def _links_gone(client: Client) -> Any:
    async def check() -> bool:
        return (await ok(client, "ble_connections"))["connections"] == []

    return check
