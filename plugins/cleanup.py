"""Resource cleanup.

A periodic sweep that frees what nobody will ask for again: devices not heard for
``forget_devices_after_s`` leave the tracker, and ended subscriptions whose leftover
notifications were not drained within ``ended_subscription_ttl_s`` are dropped with their buffers.
Idle links are the pool plugin's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.hookspecs import hookimpl

log = logging.getLogger("mcp_ble.cleanup")
SECTION = "cleanup"


class CleanupSettings(BaseModel):
    """``[cleanup]``"""

    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(60.0, gt=0, le=3600, description="time between sweeps")
    forget_devices_after_s: float = Field(
        900.0, gt=0, description="drop devices not heard for this long from the tracker"
    )
    ended_subscription_ttl_s: float = Field(
        300.0, gt=0, description="drop ended subscriptions' undrained buffers after this long"
    )


def sweep(app: Any, settings: CleanupSettings, now: float) -> tuple[int, int]:
    """One pass; returns (devices forgotten, subscription buffers dropped)."""
    devices = app.tracker.forget_older_than(settings.forget_devices_after_s)
    stale = [
        key
        for key, sub in app.subscriptions.items()
        if not sub.active
        and sub.ended_at is not None
        and now - sub.ended_at > settings.ended_subscription_ttl_s
    ]
    for key in stale:
        del app.subscriptions[key]
    return devices, len(stale)


class CleanupPlugin:
    @hookimpl
    def mcp_ble_register_settings(self, register: Any) -> None:
        register(SECTION, CleanupSettings)

    @hookimpl
    def mcp_ble_startup(self, app: Any) -> None:
        app.spawn(self._loop(app, app.settings.section(SECTION)))

    async def _loop(self, app: Any, settings: CleanupSettings) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(settings.interval_s)
                devices, buffers = sweep(app, settings, time.monotonic())
                if devices or buffers:
                    log.info(
                        "cleanup: forgot %d devices, dropped %d ended subscriptions",
                        devices,
                        buffers,
                    )
