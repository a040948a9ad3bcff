"""Listener management.

Every subscription costs radio time and a buffer. This plugin bounds them — at most
``max_per_connection`` per link and ``max_total`` in all, refused with a clear error — and removes
abandoned ones: a subscription whose buffer nobody has drained for ``abandon_after_s`` is
unsubscribed, so a forgotten agent session stops pulling notifications off the air.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.errors import NotPermitted
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import SubscribePlan
from mcp_ble.core.plugin_api import PluginApp, SubscriptionView

log = logging.getLogger("mcp_ble.listeners")


class ListenerSettings(BaseModel):
    """``[listeners]``"""

    model_config = ConfigDict(extra="forbid")

    max_per_connection: int = Field(8, ge=1, le=256, description="subscriptions per link")
    max_total: int = Field(32, ge=1, le=4096, description="subscriptions in all")
    abandon_after_s: float | None = Field(
        600.0, gt=0, description="unsubscribe when not drained for this long (unset: never)"
    )


class ListenersPlugin:
    settings_model = ListenerSettings
    settings: ListenerSettings

    @hookimpl
    def mcp_ble_startup(self, app: PluginApp) -> None:
        limit = self.settings.abandon_after_s
        if limit is not None:
            app.every(min(max(limit / 4, 0.05), 10.0), lambda: self._end_abandoned(app))

    @hookimpl
    def mcp_ble_subscribe_plan(self, plan: SubscribePlan, app: PluginApp) -> None:
        active = [s.address for s in app.subscriptions() if s.active]
        # Subscribes under way count too (oldest first, up to this one): the limits hold
        # however many arrive at once.
        for address, handle in app.subscribes_under_way():
            if (address, handle) == (plan.address, plan.handle):
                break
            active.append(address)
        on_link = [a for a in active if a == plan.address]
        if len(on_link) >= self.settings.max_per_connection:
            raise NotPermitted(
                f"{plan.address} already has {len(on_link)} subscriptions, the most allowed "
                f"per link (listeners.max_per_connection)",
                "call ble_unsubscribe on one you no longer need",
            )
        if len(active) >= self.settings.max_total:
            raise NotPermitted(
                f"There are already {len(active)} subscriptions, the most allowed "
                "(listeners.max_total)",
                "call ble_unsubscribe on ones you no longer need; ble_connections lists them",
            )

    def abandoned(self, subscriptions: list[SubscriptionView]) -> list[SubscriptionView]:
        limit = self.settings.abandon_after_s
        if limit is None:
            return []
        return [s for s in subscriptions if s.active and s.undrained_s > limit]

    async def _end_abandoned(self, app: PluginApp) -> None:
        for sub in self.abandoned(app.subscriptions()):
            log.info(
                "listeners: %s #%d not drained for %.0f s; unsubscribing",
                sub.address,
                sub.handle,
                sub.undrained_s,
            )
            try:
                await app.end_subscription(sub.address, sub.handle)
            except Exception:
                log.exception("listeners: unsubscribing %s #%d failed", sub.address, sub.handle)
