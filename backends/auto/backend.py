"""``backend = "auto"``: the first backend in ``[backends.auto] order`` that starts.

Falling back to a simulated backend is announced on stderr and that backend's
``info().simulated`` stays true, so ``ble_status`` and every scan result say ``simulated: true``:
neither the agent nor the person can mistake the virtual devices for real ones. The clock is the
chosen backend's, so durations, retry waits and periodic work run in its time.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import TextIO

from mcp_ble.core.backend import Backend, NotifyCallback
from mcp_ble.core.errors import BackendUnavailable
from mcp_ble.core.models import Advertisement, BackendInfo, GattService, ScanFilter
from mcp_ble.core.radio import RadioHealth

Candidate = tuple[str, Callable[[], Backend]]


class AutoBackend(Backend):
    """Starts the first candidate that can start and delegates everything to it."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        simulated: Collection[str] = (),
        stderr: TextIO | None = None,
    ) -> None:
        self._candidates = list(candidates)
        self._simulated = frozenset(simulated)
        self._stderr = stderr
        self._active: Backend | None = None
        #: Why the first candidate was not used ("" when it was).
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
            f"auto: {self._candidates[0][0]} could not start ({self.fallback_reason})"
            if self.fallback_reason
            else f"auto: {self._candidates[0][0]} started"
        )
        return BackendInfo(info.name, info.simulated, {**info.details, "selected_by": chosen})

    @property
    def requests_mtu(self) -> bool:  # type: ignore[override]
        """Whether the chosen backend asks for the MTU itself (False before start)."""
        return self._active is not None and self._active.requests_mtu

    @property
    def health(self) -> RadioHealth:
        """The chosen backend's radio: a lost adapter shows through auto too."""
        return self._active.health if self._active is not None else super().health

    def is_connected(self, address: str) -> bool:
        return self._active is not None and self._active.is_connected(address)

    def now(self) -> float:
        return self._active.now() if self._active is not None else super().now()

    async def sleep(self, seconds: float) -> None:
        await (self._active.sleep(seconds) if self._active is not None else super().sleep(seconds))

    async def sleep_background(self, seconds: float) -> None:
        if self._active is not None:
            await self._active.sleep_background(seconds)
        else:
            await super().sleep_background(seconds)

    async def start(self) -> None:
        reasons: list[str] = []
        for i, (name, make) in enumerate(self._candidates):
            last = i == len(self._candidates) - 1
            backend = make()
            try:
                await backend.start()
            except BackendUnavailable as exc:
                reasons.append(f"{name}: {exc.what}")
                if last:
                    why = "; ".join(reasons)
                    raise BackendUnavailable(
                        f"auto: no backend could start ({why})", exc.hint
                    ) from None
                continue
            if reasons:
                self.fallback_reason = "; ".join(reasons)
                self._announce(name)
            # Forward through self so a handler the core sets later still applies.
            backend.on_disconnect = lambda address, reason: self.on_disconnect(address, reason)
            # An MTU chooser the core set (core/mtu.py) reaches the chosen backend too.
            backend.mtu_chooser = self.mtu_chooser
            self._active = backend
            return

    def _announce(self, name: str) -> None:
        first = self._candidates[0][0]
        if name in self._simulated:
            message = (
                f"mcp-ble: warning: {first} could not start ({self.fallback_reason}). Serving the "
                f"SIMULATED devices of backend '{name}' instead: they are virtual, not real "
                "hardware (ble_status and every scan say simulated: true). Set "
                f"backend = \"{first}\" to require it, or run 'mcp-ble doctor'."
            )
        else:
            message = (
                f"mcp-ble: note: {first} could not start ({self.fallback_reason}); using "
                f"backend '{name}'. Run 'mcp-ble doctor' for details."
            )
        print(message, file=self._stderr or sys.stderr, flush=True)

    async def stop(self) -> None:
        if self._active is not None:
            await self._active.stop()

    def scan(self, duration_s: float, scan_filter: ScanFilter) -> AsyncIterator[Advertisement]:
        return self.active.scan(duration_s, scan_filter)

    @property
    def pair_on_connect(self) -> bool:
        """Whether the backend in use pairs while connecting (the write policy checks it)."""
        return bool(getattr(self._active, "pair_on_connect", False))

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
