"""``backend = "auto"``: bleak when an adapter answers, otherwise the simulated world, loudly.

The fallback is announced on stderr and the simulated backend's ``info().simulated`` stays true, so
``ble_status`` and every scan result say ``simulated: true``: neither the agent nor the person can
mistake the virtual devices for real ones.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from mcp_ble.core.backend import Backend, NotifyCallback
from mcp_ble.core.errors import BackendUnavailable
from mcp_ble.core.models import Advertisement, BackendInfo, GattService, ScanFilter


class AutoBackend(Backend):
    """Starts the first backend that can start and delegates everything to it."""

    def __init__(
        self,
        make_real: Callable[[], Backend],
        make_fallback: Callable[[], Backend],
        stderr: TextIO | None = None,
    ) -> None:
        self._make_real = make_real
        self._make_fallback = make_fallback
        self._stderr = stderr
        self._active: Backend | None = None
        #: Why the real backend was not used ("" when it was).
        self.fallback_reason = ""

    @property
    def active(self) -> Backend:
        if self._active is None:
            raise BackendUnavailable("The auto backend has not started", "start() it first")
        return self._active

    def info(self) -> BackendInfo:
        if self._active is None:
            return BackendInfo("auto", details={"state": "not started"})
        info = self._active.info()
        chosen = (
            f"auto: no Bluetooth adapter answered ({self.fallback_reason})"
            if self.fallback_reason
            else "auto: a Bluetooth adapter answered"
        )
        return BackendInfo(info.name, info.simulated, {**info.details, "selected_by": chosen})

    async def start(self) -> None:
        real = self._make_real()
        try:
            await real.start()
            chosen = real
        except BackendUnavailable as exc:
            self.fallback_reason = exc.what
            print(
                f"mcp-ble: warning: no Bluetooth adapter answered ({exc.what}). Serving the "
                "SIMULATED demo world instead: its devices are virtual, not real hardware "
                '(ble_status and every scan say simulated: true). Set backend = "bleak" to '
                "require a real adapter, or run 'mcp-ble doctor'.",
                file=self._stderr or sys.stderr,
                flush=True,
            )
            chosen = self._make_fallback()
            await chosen.start()
        # Forward through self so a handler the core sets later still applies.
        chosen.on_disconnect = lambda address, reason: self.on_disconnect(address, reason)
        self._active = chosen

    async def stop(self) -> None:
        if self._active is not None:
            await self._active.stop()

    def scan(self, duration_s: float, scan_filter: ScanFilter) -> AsyncIterator[Advertisement]:
        return self.active.scan(duration_s, scan_filter)

    async def connect(self, address: str, timeout_s: float) -> None:
        await self.active.connect(address, timeout_s)

    async def disconnect(self, address: str) -> None:
        await self.active.disconnect(address)

    async def discover(self, address: str) -> list[GattService]:
        return await self.active.discover(address)

    def mtu(self, address: str) -> int:
        return self.active.mtu(address)

    async def read(self, address: str, handle: int) -> bytes:
        return await self.active.read(address, handle)

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        await self.active.write(address, handle, data, response)

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        return await self.active.read_descriptor(address, handle)

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        await self.active.write_descriptor(address, handle, data)

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        await self.active.start_notify(address, handle, callback)

    async def stop_notify(self, address: str, handle: int) -> None:
        await self.active.stop_notify(address, handle)

    async def pair(self, address: str) -> None:
        await self.active.pair(address)


def create_auto(settings: Any, app: Any) -> AutoBackend:
    """Compose the registered ``bleak`` and ``simulated`` backends through the app's catalog,
    each with its own ``[backends.<name>]`` settings."""
    catalog, core = app.catalog, app.settings

    def make(name: str) -> Callable[[], Backend]:
        return lambda: catalog.backends[name].factory(core.backend_settings(name), app)

    return AutoBackend(make("bleak"), make("simulated"))
