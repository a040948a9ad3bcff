"""Listening for ``ble://sensors`` subscribers: while at least one client subscribes to the
resource, the server listens for advertisements itself, so the readings (and the resource's
"resource updated") change without anyone calling ``ble_scan`` or ``ble_sensors``.

- One listener at most, however many subscribe: it asks the shared scan broker
  (:mod:`.scanning`) for windows of :data:`WINDOW_S` seconds, one after another, so a
  concurrent ``ble_scan`` shares the same radio scan. It takes no place of
  ``server.max_concurrent_scans`` (the callers' scans are never kept waiting by it).
- A holder is a 2025-11-25 session that sent ``resources/subscribe`` for ``ble://sensors`` (held
  until it unsubscribes or its session ends, however it ends) or a 2026-07-28
  ``subscriptions/listen`` stream naming it (held while the stream is open). When the last one
  lets go the listener stops, and the radio with it unless someone else scans.
- Without a decoder plugin there are no readings to update, and it does not listen; nor with
  ``server.sensors_listen = false``.
- A radio that cannot scan (unavailable, lost) is retried every :data:`RETRY_S` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .errors import BleError
from .hookspecs import hookimpl
from .models import ScanFilter
from .plans import ScanPlan

if TYPE_CHECKING:
    from .app import BleApp

log = logging.getLogger("mcp_ble.sensors")

#: Seconds of one listening window (on the backend's clock).
WINDOW_S = 30.0
#: Seconds before listening again after the radio failed to scan.
RETRY_S = 5.0


class SensorWatch:
    """Listens while anyone holds it (see the module docstring)."""

    def __init__(self, app: BleApp) -> None:
        self.app = app
        self.holders: set[object] = set()
        #: Listening windows completed, and radio failures met (for tests and metrics).
        self.windows = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._task is not None and not self._task.done()

    def hold(self, holder: object) -> None:
        """``holder`` (a session's connection, a listen stream) subscribes to the readings."""
        self.holders.add(holder)
        app = self.app
        if self.listening or not app.sensors.enabled or not app.settings.server.sensors_listen:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sensor-watch")

    def release(self, holder: object) -> None:
        """``holder`` no longer subscribes; the last one stops the listening."""
        self.holders.discard(holder)
        if not self.holders and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        app = self.app
        while self.holders:
            try:
                plan = ScanPlan(duration_s=WINDOW_S, scan_filter=ScanFilter())
                await app.scanner.scan(plan, background=True)
                self.windows += 1
            except BleError as exc:
                self.failures += 1
                log.warning("listening for ble://sensors subscribers failed: %s", exc)
                await app.radio.sleep_background(RETRY_S)

    @hookimpl
    async def mcp_ble_shutdown(self) -> None:
        self.holders.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
