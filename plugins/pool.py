"""Connection pooling.

Links are expensive to make (hundreds of milliseconds, and an adapter has only a few slots), so
they stay open for reuse; ``ble_connect`` on a connected device returns the pooled link. When the
pool is full, the least recently used link is released to make room (links with active
subscriptions are kept while others can go), and links idle for ``idle_timeout_s`` are closed in
the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import ConnectPlan

log = logging.getLogger("mcp_ble.pool")
SECTION = "pool"


class PoolSettings(BaseModel):
    """``[pool]``"""

    model_config = ConfigDict(extra="forbid")

    max_connections: int = Field(
        5, ge=1, le=64, description="links kept at once (adapters commonly allow 5 to 7)"
    )
    idle_timeout_s: float | None = Field(
        300.0, gt=0, description="close links unused this long (unset: never)"
    )
    keep_subscribed: bool = Field(
        True, description="never close an idle link that has active subscriptions"
    )


def has_subscriptions(app: Any, address: str) -> bool:
    return any(a == address and s.active for (a, _), s in app.subscriptions.items())


class ConnectionPool:
    """Chooses which links to release; the core does the disconnecting."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings

    def evictions(self, app: Any, needed: int = 1) -> list[str]:
        """Least recently used first, links without subscriptions before those with."""
        excess = len(app.connections) + needed - self.settings.max_connections
        if excess <= 0:
            return []
        # A link with an operation under way is never released: that operation would fail.
        ranked = sorted(
            (c for c in app.connections.values() if c.address not in app.in_flight),
            key=lambda c: (has_subscriptions(app, c.address), c.last_used),
        )
        return [c.address for c in ranked[:excess]]

    def idle(self, app: Any, now: float) -> list[str]:
        timeout = self.settings.idle_timeout_s
        if timeout is None:
            return []
        return [
            c.address
            for c in app.connections.values()
            if now - c.last_used > timeout
            and c.address not in app.in_flight
            and not (self.settings.keep_subscribed and has_subscriptions(app, c.address))
        ]


class PoolPlugin:
    def __init__(self) -> None:
        self.pool: ConnectionPool | None = None

    @hookimpl
    def mcp_ble_register_settings(self, register: Any) -> None:
        register(SECTION, PoolSettings)

    @hookimpl
    def mcp_ble_startup(self, app: Any) -> None:
        self.pool = ConnectionPool(app.settings.section(SECTION))
        if self.pool.settings.idle_timeout_s is not None:
            app.spawn(self._reap_idle(app))

    @hookimpl
    def mcp_ble_connect_plan(self, plan: ConnectPlan, app: Any) -> None:
        if self.pool is None:
            return
        limit = self.pool.settings.max_connections
        needed = len(app.connections) + 1 - limit
        released = self.pool.evictions(app)
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

    async def _reap_idle(self, app: Any) -> None:
        assert self.pool is not None
        timeout = self.pool.settings.idle_timeout_s or 0
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(min(max(timeout / 4, 0.05), 5.0))
                for address in self.pool.idle(app, time.monotonic()):
                    log.info("pool: closing %s, idle for over %.0f s", address, timeout)
                    try:
                        await app.disconnect(address)
                    except Exception:
                        log.exception("pool: closing idle link %s failed", address)
