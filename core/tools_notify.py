"""Notification tools: ``ble_subscribe``, ``ble_unsubscribe``, ``ble_notifications``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from . import resources
from .outputs import (
    NotificationOut,
    NotificationsResult,
    SubscribeResult,
    UnsubscribeResult,
    value_fields,
)
from .toolkit import LINK, READ_ONLY, AddressArg, CharacteristicArg, app_of, tool


@tool(LINK)
async def ble_subscribe(
    ctx: Context, address: AddressArg, characteristic: CharacteristicArg
) -> SubscribeResult:
    """Buffer notifications/indications; drain them with ble_notifications."""
    sub, new = await app_of(ctx).subscribe(address, characteristic)
    return SubscribeResult(
        resource=resources.notification_uri(sub.address, sub.handle),
        buffer_size=sub.items.maxlen or 0,
        already_subscribed=None if new else True,
        notes=sub.notes or None,
    )


@tool(LINK)
async def ble_unsubscribe(
    ctx: Context, address: AddressArg, characteristic: CharacteristicArg
) -> UnsubscribeResult:
    """Stop notifications; what is still buffered is discarded."""
    sub = await app_of(ctx).unsubscribe(address, characteristic)
    return UnsubscribeResult(
        received=sub.received, dropped=sub.dropped or None, undelivered=len(sub.items) or None
    )


@tool(READ_ONLY)
async def ble_notifications(
    ctx: Context,
    address: AddressArg,
    characteristic: CharacteristicArg,
    max_items: Annotated[int, Field(description="most to return")] = 50,
    wait_s: Annotated[
        float, Field(description="when none are buffered, wait this long for one")
    ] = 2.0,
) -> NotificationsResult:
    """Drain buffered notifications, oldest first, with drop counts and why a subscription
    ended."""
    app = app_of(ctx)
    sub, items = await app.notifications(address, characteristic, max_items, wait_s)
    start = items[0][0] if items else 0.0
    return NotificationsResult(
        start=(
            datetime.fromtimestamp(start, UTC).isoformat(timespec="milliseconds") if items else None
        ),
        notifications=[
            NotificationOut(ms=round((t - start) * 1000), **value_fields(sub.uuid, data, app.codec))
            for t, data in items
        ],
        remaining=len(sub.items) or None,
        received=sub.received,
        dropped=sub.dropped or None,
        ended=None if sub.active else (sub.ended or "ended"),
    )
