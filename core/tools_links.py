"""Link tools: ``ble_connect``, ``ble_disconnect``, ``ble_pair``, ``ble_connections``,
``ble_status``."""

from __future__ import annotations

import time
from typing import Annotated

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from pydantic import Field

from . import __version__
from .app import BleApp, Subscription
from .approval import Preview, WriteApproval, approving, ask_pair, preview_pair
from .outputs import (
    BackendOut,
    ConnectionOut,
    ConnectionsResult,
    ConnectResult,
    DisconnectResult,
    PairResult,
    PluginOut,
    StatusResult,
    SubscriptionOut,
    uuid_label,
)
from .plugin_api import RadioView
from .sessions import current_owner
from .toolkit import LINK, READ_ONLY, WRITE, AddressArg, app_of, tool


@tool(LINK)
async def ble_connect(
    ctx: Context,
    address: Annotated[str, Field(description="as ble_scan lists it")],
    timeout_s: Annotated[float | None, Field(description="seconds, retries included")] = None,
) -> ConnectResult:
    """Connect by address (no ble_scan needed first). Connecting twice returns the existing
    link."""
    conn, new = await app_of(ctx).connect(address, timeout_s)
    return ConnectResult(
        mtu=conn.mtu,
        mtu_by=conn.mtu_by,
        already_connected=None if new else True,
        attempts=conn.attempts if new and conn.attempts > 1 else None,
        notes=(conn.notes or None) if new else None,
        radio=conn.radio if new and several(app_of(ctx)) else None,
    )


@tool(LINK)
async def ble_disconnect(ctx: Context, address: AddressArg) -> DisconnectResult:
    """Disconnect; buffered notifications stay readable. A link another MCP session uses
    stays up for it."""
    was, others = await app_of(ctx).leave(address)
    return DisconnectResult(was_connected=was, other_sessions=others or None)


@tool(WRITE)
async def ble_pair(
    ctx: Context,
    address: AddressArg,
    preview: Annotated[Preview, Resolve(preview_pair)],
    approval: Annotated[ElicitationResult[WriteApproval], Resolve(ask_pair)],
) -> PairResult:
    """Pair (bond) with a connected device that answers Insufficient Authentication. Counts
    as a write (may ask the person first)."""
    with approving(preview, approval):
        await app_of(ctx).pair(address)
    return PairResult(paired=True)


def subscription_out(sub: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        characteristic=uuid_label(sub.uuid),
        handle=sub.handle,
        buffered=len(sub.items),
        received=sub.received,
        dropped=sub.dropped or None,
        ended=None if sub.active else (sub.ended or "ended"),
    )


def connections_out(app: BleApp) -> ConnectionsResult:
    now = time.time()
    mono = app.now()
    out = []
    for conn in app.connections.values():
        record = app.tracker.get(conn.address)
        subs = app.subscriptions_of(conn.address)
        mine = [s for s in subs if s.owner == current_owner()]
        others = sum(s.active for s in subs if s.owner != current_owner())
        out.append(
            ConnectionOut(
                address=conn.address,
                name=(record.name or None) if record else None,
                mtu=conn.mtu,
                mtu_by=conn.mtu_by,
                connected_for_s=round(now - conn.connected_at, 1),
                idle_s=round(mono - conn.last_used, 1),
                radio=conn.radio if several(app) else None,
                subscriptions=[subscription_out(s) for s in mine] or None,
                other_sessions_subscriptions=others or None,
            )
        )
    return ConnectionsResult(connections=out)


@tool(READ_ONLY)
async def ble_connections(ctx: Context) -> ConnectionsResult:
    """Links that are up, with MTU, age, idle time and subscriptions."""
    return connections_out(app_of(ctx))


def several(app: BleApp) -> bool:
    """Whether several radios serve (results then name the radio; with one they do not)."""
    return app.fleet is not None and app.fleet.several


def radios_out(app: BleApp) -> dict[str, str] | None:
    """Each radio of several: ``"ready; slots 1/3; heard 12"`` (links used/limit, '?' when
    the radio does not tell; devices heard within server.recent_s)."""
    if not several(app):
        return None
    return {v.name: radio_line(v) for v in app.radio_views()}


def radio_summary(app: BleApp) -> str:
    """``ready``, ``lost: <reason>`` or ``recovering: <reason>``; with several radios, ready
    while any is, saying how many are down: ``ready (1 of 3 radios down)``."""
    summary = app.radio.health.summary()
    if summary == "ready" and several(app):
        views = app.radio_views()
        down = sum(1 for v in views if v.state != "ready")
        if down:
            summary = f"ready ({down} of {len(views)} radios down)"
    return summary


def radio_line(v: RadioView) -> str:
    state = v.state if v.state == "ready" else f"{v.state} ({v.reason})"
    limit = v.limit if v.limit is not None else "?"
    return f"{state}; slots {v.used}/{limit}; heard {v.heard}"


def third_party(origin: str | None) -> str | None:
    """A plugin's origin, when it is not built in (built-ins need no introduction)."""
    return None if not origin or origin.startswith("built-in") else origin


@tool(READ_ONLY)
async def ble_status(ctx: Context) -> StatusResult:
    """Backend (simulated or not), plugins with their hooks, link, subscription and scan
    counts."""
    app = app_of(ctx)
    info = app.radio.info()
    return StatusResult(
        version=__version__,
        backend=BackendOut(name=info.name, details=info.details or None),
        radio=radio_summary(app),
        simulated=info.simulated,
        plugins=[
            PluginOut(
                name=name,
                # without the "mcp_ble_" every hook name starts with (doctor shows it whole)
                hooks=[hook.removeprefix("mcp_ble_") for hook in hooks],
                origin=third_party(app.catalog.origins.get(name)),
            )
            for name, hooks in app.plugin_hooks()
        ],
        connections=len(app.connections),
        subscriptions=sum(1 for s in app.subscriptions.values() if s.active),
        scans_run=app.scans_run,
        radio_scans=app.scanner.radio_scans,
        tracked_devices=len(app.tracker),
        uptime_s=round(time.time() - app.started_at, 1),
        radios=radios_out(app),
    )
