"""Listener management.

Every subscription costs radio time and a buffer. This plugin bounds them — at most
``max_per_connection`` per link and ``max_total`` in all, refused with a clear error — and removes
abandoned ones: a subscription whose buffer nobody has drained for ``abandon_after_s`` is
unsubscribed, so a forgotten agent session stops pulling notifications off the air.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.errors import NotPermitted
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import SubscribePlan

log = logging.getLogger("mcp_ble.listeners")
SECTION = "listeners"


class ListenerSettings(BaseModel):
    """``[listeners]``"""

    model_config = ConfigDict(extra="forbid")

    max_per_connection: int = Field(8, ge=1, le=256, description="subscriptions per link")
    max_total: int = Field(32, ge=1, le=4096, description="subscriptions in all")
    abandon_after_s: float | None = Field(
        600.0, gt=0, description="unsubscribe when not drained for this long (unset: never)"
    )


class ListenersPlugin:
    def __init__(self) -> None:
        self.settings = ListenerSettings()

    @hookimpl
    def mcp_ble_register_settings(self, register: Any) -> None:
        register(SECTION, ListenerSettings)

    @hookimpl
    def mcp_ble_startup(self, app: Any) -> None:
        self.settings = app.settings.section(SECTION)
        if self.settings.abandon_after_s is not None:
            app.spawn(self._reap(app))

    @hookimpl
    def mcp_ble_subscribe_plan(self, plan: SubscribePlan, app: Any) -> None:
        active = [s.address for s in app.subscriptions.values() if s.active]
        # Subscribes under way count too (oldest first, up to this one): the limits hold
        # however many arrive at once.
        for pending in app.subscribing.values():
            if pending is plan:
                break
            active.append(pending.address)
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

    def abandoned(self, app: Any, now: float) -> list[Any]:
        limit = self.settings.abandon_after_s
        if limit is None:
            return []
        return [s for s in app.subscriptions.values() if s.active and now - s.last_drained > limit]

    async def _reap(self, app: Any) -> None:
        limit = self.settings.abandon_after_s or 0
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(min(max(limit / 4, 0.05), 10.0))
                for sub in self.abandoned(app, time.monotonic()):
                    log.info(
                        "listeners: %s #%d not drained for %.0f s; unsubscribing",
                        sub.address,
                        sub.handle,
                        limit,
                    )
                    try:
                        await app.unsubscribe(sub.address, sub.handle)
                    except Exception:
                        log.exception(
                            "listeners: unsubscribing %s #%d failed", sub.address, sub.handle
                        )
