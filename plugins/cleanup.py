"""Resource cleanup.

A periodic sweep that frees what nobody will ask for again: devices not heard for
``forget_devices_after_s`` leave the tracker, and ended subscriptions whose leftover
notifications were not drained within ``ended_subscription_ttl_s`` are dropped with their buffers.
Idle links are the pool plugin's job.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plugin_api import PluginApp

log = logging.getLogger("mcp_ble.cleanup")


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


def sweep(app: PluginApp, settings: CleanupSettings) -> tuple[int, int]:
    """One pass; returns (devices forgotten, subscription buffers dropped)."""
    devices = app.forget_devices_older_than(settings.forget_devices_after_s)
    buffers = app.drop_ended_subscriptions(settings.ended_subscription_ttl_s)
    return devices, buffers


class CleanupPlugin:
    settings_model = CleanupSettings
    settings: CleanupSettings

    @hookimpl
    def mcp_ble_startup(self, app: PluginApp) -> None:
        app.every(self.settings.interval_s, lambda: self._sweep(app))

    def _sweep(self, app: PluginApp) -> None:
        devices, buffers = sweep(app, self.settings)
        if devices or buffers:
            log.info("cleanup: forgot %d devices, dropped %d ended subscriptions", devices, buffers)
