"""``scan_budget``: caps how long a scan may run, and says so in the scan's notes.

Uses only what mcp-ble documents for plugins: ``@hookimpl``, ``settings_model`` (the
``[scan_budget]`` section, validated by mcp-ble and set as ``self.settings``) and the ``app``
surface (``PluginApp``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import ScanPlan
from mcp_ble.core.plugin_api import PluginApp


class ScanBudgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_scan_s: float = Field(1.0, gt=0, description="longest scan allowed")


class ScanBudget:
    settings_model = ScanBudgetSettings
    settings: ScanBudgetSettings

    def __init__(self) -> None:
        self.links_seen: list[int] = []

    @hookimpl
    def mcp_ble_scan_plan(self, plan: ScanPlan, app: PluginApp) -> None:
        limit = self.settings.max_scan_s
        if plan.duration_s > limit:
            plan.duration_s = limit
            plan.note(f"scan_budget: capped at {limit:g} s")

    @hookimpl
    async def mcp_ble_connected(self, address: str, app: PluginApp) -> None:
        self.links_seen.append(len(app.links()))
