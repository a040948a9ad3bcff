"""Approval of writes by a person, through MCP elicitation.

A write tool's resolver runs before the tool body (the SDK's ``Resolve``), so the person is asked
before anything is sent: on protocol 2026-07-28 the question rides an ``InputRequiredResult`` and
the client retries with the answer, on 2025-11-25 it is an ``elicitation/create`` request in the
middle of the call.
"""

from __future__ import annotations

from typing import Any, cast

from mcp.server.mcpserver import Context, Elicit, ElicitationResult
from pydantic import BaseModel, Field

from .app import BleApp
from .errors import BleError, NotPermitted
from .sig import printable_text
from .values import parse_address, parse_value


class WriteApproval(BaseModel):
    """The question a person answers before a write when ``server.confirm_writes`` is on."""

    approve: bool = Field(description="allow this write to the device")


NOTHING_TO_ASK = object()  # confirmations are off, or the input is refused before any I/O
CLIENT_CANNOT_ASK = object()  # the client declared no elicitation support


def check_approval(outcome: ElicitationResult[WriteApproval]) -> None:
    """Raise unless the write may go ahead; a refusal says that nothing was sent."""
    data = getattr(outcome, "data", None)
    if data is NOTHING_TO_ASK:
        return
    if data is CLIENT_CANNOT_ASK:
        raise NotPermitted(
            "This server asks a person to approve every write (server.confirm_writes = true), "
            "but this MCP client cannot ask (it declared no elicitation support); nothing was "
            "sent",
            "use a client that supports elicitation, or ask the operator to turn confirm_writes "
            "off",
        )
    if isinstance(data, WriteApproval) and data.approve:
        return
    raise NotPermitted(
        "The write was not approved; nothing was sent to the device",
        "ask the person what to do instead",
    )


async def ask_before_writing(
    ctx: Context, address: str, target: str, value: str, encoding: str
) -> Any:
    """What a write's resolver returns: nothing to ask, a refusal marker, or the question."""
    app = cast(BleApp, ctx.request_context.lifespan_context)
    if not app.settings.server.confirm_writes:
        return NOTHING_TO_ASK
    try:
        data = parse_value(value, encoding)
        record = app.tracker.get(parse_address(address))
    except BleError:
        return NOTHING_TO_ASK  # the tool refuses the input itself; don't ask about it
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return CLIENT_CANNOT_ASK
    device = f"{record.name} ({record.address})" if record and record.name else address
    shown = data.hex(" ") if len(data) <= 32 else f"{data[:32].hex(' ')} ... ({len(data)} B)"
    text = printable_text(data)
    return Elicit(
        f"Allow writing {shown}{f' ({text!r})' if text else ''} to {target} on {device}?",
        WriteApproval,
    )


async def approve_write(  # resolvers run before the tool body, so nothing is sent unasked
    ctx: Context, address: str, characteristic: str | int, value: str, encoding: str = "hex"
) -> Any:
    return await ask_before_writing(
        ctx, address, f"characteristic {characteristic}", value, encoding
    )


async def approve_descriptor_write(
    ctx: Context, address: str, descriptor: str | int, value: str, encoding: str = "hex"
) -> Any:
    return await ask_before_writing(ctx, address, f"descriptor {descriptor}", value, encoding)
