"""Connection pooling.

Links are expensive to make (hundreds of milliseconds, and an adapter has only a few slots), so
they stay open for reuse; ``ble_connect`` on a connected device returns the pooled link. When the
pool is full, the least recently used link is released to make room (links with active
subscriptions are kept while others can go), and links idle for ``idle_timeout_s`` are closed in
the background. With several radios the limit holds per radio: a connect counts the links of the
radio it goes to.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import ConnectPlan
from mcp_ble.core.plugin_api import LinkView, PluginApp

log = logging.getLogger("mcp_ble.pool")


class PoolSettings(BaseModel):
    """``[pool]``"""

    model_config = ConfigDict(extra="forbid")

    max_connections: int = Field(
        5,
        ge=1,
        le=64,
        description="links kept at once, per radio (adapters commonly allow 5 to 7)",
    )
    idle_timeout_s: float | None = Field(
        300.0, gt=0, description="close links unused this long (unset: never)"
    )
    keep_subscribed: bool = Field(
        True, description="never close an idle link that has active subscriptions"
    )


class ConnectionPool:
    """Chooses which links to release; the core does the disconnecting."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings

    def evictions(self, links: list[LinkView], needed: int = 1) -> list[str]:
        """Least recently used first; links no MCP session uses before the others, and links
        without subscriptions before those with."""
        excess = len(links) + needed - self.settings.max_connections
        if excess <= 0:
            return []
        # A link with an operation under way is never released: that operation would fail.
        ranked = sorted(
            (link for link in links if not link.busy),
            key=lambda link: (link.sessions > 0, link.active_subscriptions > 0, -link.idle_s),
        )
        return [link.address for link in ranked[:excess]]

    def idle(self, links: list[LinkView]) -> list[str]:
        timeout = self.settings.idle_timeout_s
        if timeout is None:
            return []
        return [
            link.address
            for link in links
            if link.idle_s > timeout
            and not link.busy
            and not (self.settings.keep_subscribed and link.active_subscriptions)
        ]


class PoolPlugin:
    settings_model = PoolSettings
    settings: PoolSettings

    @hookimpl
    def mcp_ble_startup(self, app: PluginApp) -> None:
        self.pool = ConnectionPool(self.settings)
        timeout = self.settings.idle_timeout_s
        if timeout is not None:
            app.every(min(max(timeout / 4, 0.05), 5.0), lambda: self._close_idle(app))

    @hookimpl
    def mcp_ble_connect_plan(self, plan: ConnectPlan, app: PluginApp) -> None:
        links = app.links()
        if plan.radio is not None:  # several radios: the links of the one it goes to
            links = [link for link in links if link.radio == plan.radio]
        limit = self.settings.max_connections
        needed = len(links) + 1 - limit
        released = self.pool.evictions(links)
        for address in released:
            plan.release.append(address)
            plan.note(
                f"pool: released {address} (least recently used) to stay within "
                f"max_connections={limit}"
            )
        if needed > len(released):
            plan.note(
                f"pool: every link is busy, so this one goes beyond max_connections={limit}; "
                "the adapter may refuse it for want of a slot"
            )

    async def _close_idle(self, app: PluginApp) -> None:
        for address in self.pool.idle(app.links()):
            log.info(
                "pool: closing %s, idle for over %.0f s", address, self.settings.idle_timeout_s
            )
            try:
                await app.release(address)
            except Exception:
                log.exception("pool: closing idle link %s failed", address)
