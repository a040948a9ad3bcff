"""Adaptive scan duration.

When the caller gives no duration, the scan lasts ``base_s × min(devices_nearby / 10, 2)`` — where
``devices_nearby`` is how many devices were heard recently — clamped to ``[min_s, max_s]``: a quiet
room gets a short scan, a crowded one a longer scan. The scan also ends early once no new matching
device has been heard for ``quiet_s``. A duration the caller asks for is always honoured.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import ScanPlan
from mcp_ble.core.plugin_api import PluginApp


class AdaptiveScanSettings(BaseModel):
    """``[adaptive_scan]``"""

    model_config = ConfigDict(extra="forbid")

    base_s: float = Field(10.0, gt=0, le=300, description="scan length at reference_devices")
    min_s: float = Field(2.0, gt=0, le=300, description="shortest adaptive scan")
    max_s: float = Field(20.0, gt=0, le=300, description="longest adaptive scan")
    reference_devices: int = Field(10, ge=1, description="device count that gives base_s")
    quiet_s: float | None = Field(
        2.0, gt=0, description="end early after this long with no new device (unset: never)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveScanSettings:
        if self.min_s > self.max_s:
            raise ValueError(f"min_s ({self.min_s}) must not exceed max_s ({self.max_s})")
        return self


def adaptive_duration(settings: AdaptiveScanSettings, nearby: int) -> float:
    factor = min(nearby / settings.reference_devices, 2.0)
    return min(settings.max_s, max(settings.min_s, settings.base_s * factor))


class AdaptiveScanPlugin:
    settings_model = AdaptiveScanSettings
    settings: AdaptiveScanSettings

    @hookimpl
    def mcp_ble_scan_plan(self, plan: ScanPlan, app: PluginApp) -> None:
        if plan.requested_duration_s is not None:
            return
        nearby = app.devices_heard_within(app.settings.server.recent_s)
        plan.duration_s = adaptive_duration(self.settings, nearby)
        plan.note(f"adaptive_scan: {plan.duration_s:g} s for {nearby} devices heard recently")
        if self.settings.quiet_s is not None:
            plan.quiet_s = self.settings.quiet_s
