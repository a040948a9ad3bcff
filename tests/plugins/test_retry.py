"""Retry with backoff through the core: what is retried, what never is, and the deadline."""

from __future__ import annotations

import pytest

from mcp_ble.backends.simulated.backend import SimulatedBackend
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.app import BleApp
from mcp_ble.core.errors import BleTimeout, ConnectionFailed, GattError, OutOfSlots
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter

from tests.helpers import load, write_config

HRM = "C4:7C:8D:6A:12:01"
LAMP = "A4:C1:38:0D:52:E3"


class FlakyBackend(SimulatedBackend):
    """The demo world, with scripted failures in front of chosen operations."""

    def __init__(self) -> None:
        super().__init__(load_world("demo"), time_scale=0)
        self.failures: dict[str, list[Exception]] = {}
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        queue = self.failures.get(op)
        if queue:
            raise queue.pop(0)

    async def connect(self, address, timeout_s):
        self._maybe_fail("connect")
        await super().connect(address, timeout_s)

    async def read(self, address, handle):
        self._maybe_fail("read")
        return await super().read(address, handle)

    async def write(self, address, handle, data, response):
        self._maybe_fail("write")
        await super().write(address, handle, data, response)


class FlakyPlugin:
    """Registers the flaky backend exactly as a third-party backend plugin would."""

    backend: FlakyBackend | None = None

    @hookimpl
    def mcp_ble_register_backends(self, register):
        def create(settings, app):
            FlakyPlugin.backend = FlakyBackend()
            return FlakyPlugin.backend

        register("flaky", create)


def flaky_app(tmp_path, **retry) -> tuple[BleApp, type[FlakyPlugin]]:
    values = {"initial_delay_s": 0.01, "backoff_delay_s": 0.02, **retry}
    lines = "".join(f"{key} = {value}\n" for key, value in values.items())
    config = write_config(
        tmp_path,
        f'backend = "flaky"\nplugins = ["metrics", "retry"]\n[server]\nwrite_policy = "open"\n'
        f"[retry]\n{lines}",
    )
    loaded, catalog = load(config, extra_plugins={"flaky": FlakyPlugin})
    return BleApp.create(loaded, catalog), FlakyPlugin


async def test_transient_connect_failures_are_retried(tmp_path):
    app, plugin = flaky_app(tmp_path)
    async with app:
        await app.scan(2.0, ScanFilter())
        plugin.backend.failures["connect"] = [ConnectionFailed("aborted"), OutOfSlots("full")]
        conn, _ = await app.connect(HRM)
        assert conn.attempts == 3 and plugin.backend.calls["connect"] == 3
        value = app.metrics_registry.get_sample_value
        assert value("ble_retries_total", {"kind": "connect"}) == 2
        assert value("ble_connection_success_total") == 1


async def test_gives_up_after_max_attempts(tmp_path):
    app, plugin = flaky_app(tmp_path, max_attempts=2)
    async with app:
        await app.scan(2.0, ScanFilter())
        plugin.backend.failures["connect"] = [ConnectionFailed("aborted")] * 5
        with pytest.raises(ConnectionFailed):
            await app.connect(HRM)
        assert plugin.backend.calls["connect"] == 2
        assert app.metrics_registry.get_sample_value("ble_connection_failure_total") == 1
        assert HRM not in app.connections


async def test_reads_retry_but_writes_never_do(tmp_path):
    app, plugin = flaky_app(tmp_path)
    async with app:
        await app.scan(2.0, ScanFilter())
        await app.connect(LAMP)
        plugin.backend.failures["read"] = [ConnectionFailed("interference")]
        data = (await app.read(LAMP, "fff1")).data
        assert data == b"\x00" and plugin.backend.calls["read"] == 2
        plugin.backend.failures["write"] = [ConnectionFailed("interference")]
        with pytest.raises(ConnectionFailed):
            await app.write(LAMP, "fff1", b"\x01")
        assert plugin.backend.calls["write"] == 1  # not repeated: it may have been applied


async def test_gatt_refusals_are_not_retried(tmp_path):
    app, plugin = flaky_app(tmp_path)
    async with app:
        await app.scan(2.0, ScanFilter())
        await app.connect(LAMP)
        plugin.backend.failures["read"] = [GattError(0x05, "read")]
        with pytest.raises(GattError, match="Insufficient Authentication"):
            await app.read(LAMP, "fff1")
        assert plugin.backend.calls["read"] == 1


async def test_a_retry_never_outlives_the_deadline(tmp_path):
    app, plugin = flaky_app(tmp_path, backoff_delay_s=30)
    async with app:
        await app.scan(2.0, ScanFilter())
        plugin.backend.failures["connect"] = [OutOfSlots("full")]
        with pytest.raises(OutOfSlots):
            await app.connect(HRM, timeout_s=1.0)  # a 30 s backoff would end after the deadline
        assert plugin.backend.calls["connect"] == 1


async def test_without_the_retry_plugin_nothing_is_retried(tmp_path):
    config = write_config(tmp_path, 'backend = "flaky"\nplugins = []\n')
    loaded, catalog = load(config, extra_plugins={"flaky": FlakyPlugin})
    async with BleApp.create(loaded, catalog) as app:
        await app.scan(2.0, ScanFilter())
        FlakyPlugin.backend.failures["connect"] = [ConnectionFailed("aborted")]
        with pytest.raises(ConnectionFailed):
            await app.connect(HRM)


def test_backoff_is_the_transient_wait_when_another_radio_remains():
    """'Out of slots' on one of several radios: the next attempt goes to another radio, so it
    waits the transient delay, not the backoff meant for the same radio's slots."""
    import time

    from mcp_ble.core.plans import Operation
    from mcp_ble.plugins.retry import RetryPolicy, RetrySettings

    policy = RetryPolicy(RetrySettings())
    op = Operation("connect", "AA:BB:CC:DD:EE:FF", time.monotonic() + 20)
    full = OutOfSlots("full", "wait")
    assert policy.delay(op, full, 1) == 4.0
    op.other_radio = True
    assert policy.delay(op, full, 1) == 0.25
    # A connect timeout is retried only when another radio can take the next attempt.
    late = BleTimeout("late", "retry")
    assert policy.delay(op, late, 1) == 0.25
    op.other_radio = False
    assert policy.delay(op, late, 1) is None
