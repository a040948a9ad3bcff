"""A person approves writes through MCP elicitation (``server.write_policy = "confirm"``).

Each write tool has two resolvers (the SDK's ``Resolve``), which run before the tool body, so the
person is asked before anything is sent: ``preview_*`` asks the core what exactly would be sent
(plan hooks included: a plugin that adds or changes bytes is shown with them), ``ask_*`` turns that
into a question. On protocol 2026-07-28 the question rides an ``InputRequiredResult`` and the
client retries with the answer; on 2025-11-25 it is an ``elicitation/create`` request in the
middle of the call. The body then installs an approver for the core's write policy: the core
allows the write only if what it is about to send is what the person approved. A write no write
tool previewed (a plugin's own, pairing while connecting) is asked about mid-call where the
protocol allows it (2025-11-25, :func:`asking_mid_call`) and refused otherwise.

Text from the air (a device's advertised name) is stripped of control and format characters
(newlines, bidirectional overrides), cut to 32 characters, quoted and marked as advertised, so a
device cannot add its own words to the question.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, cast

from mcp.server.elicitation import render_elicitation_schema
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from pydantic import BaseModel, Field

from .app import BleApp
from .errors import BleError, NotPermitted
from .policy import Approver, Decision, WriteAttempt, WriteGuard, current_approver
from .sig import printable_text
from .values import parse_address, parse_value

NAME_LIMIT = 32
SHOWN_BYTES = 32


class WriteApproval(BaseModel):
    """The question a person answers before a write under ``server.write_policy = "confirm"``."""

    approve: bool = Field(description="allow this write to the device")


@dataclass(frozen=True, slots=True)
class Preview:
    """What the write tool is about to do: ``attempt`` is None when the call will fail before
    any I/O (bad input, not connected), ``ask`` whether the person is to be asked."""

    attempt: WriteAttempt | None
    ask: bool
    #: The typed value the bytes were encoded from, shown with them.
    typed: dict[str, Any] | None = None


CLIENT_CANNOT_ASK = object()  # the client declared no elicitation support
NOTHING_TO_ASK = object()  # the policy decides without a person, or the call fails first


def clean(text: str, limit: int) -> str:
    """``text`` without control, format or line-separator characters, at most ``limit``
    characters, in double quotes (inner quotes and backslashes escaped)."""
    return json.dumps(plain(text, limit), ensure_ascii=False)


def plain(text: str, limit: int) -> str:
    """``text`` without control, format or line-separator characters, at most ``limit``."""
    kept = "".join(
        ch if not unicodedata.category(ch).startswith(("C", "Zl", "Zp")) else " " for ch in text
    )
    kept = " ".join(kept.split())
    return kept[:limit] + ("…" if len(kept) > limit else "")


def question(
    attempt: WriteAttempt, advertised_name: str | None, typed: dict[str, Any] | None = None
) -> str:
    device = attempt.address
    if advertised_name:
        name = clean(advertised_name, NAME_LIMIT)
        device += f", advertised name {name} (as advertised by the device)"
    if attempt.kind == "pair":
        return f"Allow pairing (bonding) with {device}? Both sides store keys for later links."
    data = attempt.data
    shown = data[:SHOWN_BYTES].hex(" ") or "(empty)"
    if len(data) > SHOWN_BYTES:
        shown += " …"
    text = printable_text(data)
    count = f"{len(data)} byte{'' if len(data) == 1 else 's'}"
    value = f"{count}, hex {shown}" + (f", text {clean(text, 64)}" if text else "")
    if typed is not None:  # compact JSON, unquoted (an object cannot be mistaken for text)
        compact = json.dumps(typed, ensure_ascii=False, separators=(",", ":"))
        value += f" (typed value {plain(compact, 96)})"
    pieces = f" as {attempt.chunks} writes" if attempt.chunks > 1 else ""
    return f"Allow writing {value} to {attempt.target()} on {device}{pieces}?"


async def _preview(ctx: Context, make: Any, typed: dict[str, Any] | None = None) -> Preview:
    app = cast(BleApp, ctx.request_context.lifespan_context)
    guard = app.guard
    if guard.policy != "confirm":
        return Preview(None, False)
    try:
        attempt = await make(app)
    except BleError:
        return Preview(None, False)  # the tool body reports it, before any I/O
    return Preview(attempt, not guard.listed(attempt), typed)


async def preview_write(
    ctx: Context,
    address: str,
    characteristic: str | int,
    value: str | dict[str, Any],
    encoding: str = "hex",
    response: str = "auto",
) -> Preview:
    async def make(app: BleApp) -> WriteAttempt:
        data = await app.value_bytes(address, characteristic, value, encoding)
        return await app.preview_write(address, characteristic, data, response)

    return await _preview(ctx, make, value if isinstance(value, dict) else None)


async def preview_descriptor_write(
    ctx: Context,
    address: str,
    descriptor: str | int,
    value: str,
    encoding: str = "hex",
    characteristic: str | int | None = None,
) -> Preview:
    return await _preview(
        ctx,
        lambda app: app.preview_write_descriptor(
            address, descriptor, parse_value(value, encoding), characteristic
        ),
    )


async def preview_pair(ctx: Context, address: str) -> Preview:
    async def make(app: BleApp) -> WriteAttempt:
        return WriteAttempt("pair", app.connection(address).address)

    return await _preview(ctx, make)


def _ask(ctx: Context, preview: Preview) -> Any:
    """What an ``ask_*`` resolver returns: nothing to ask, a refusal marker, or the question."""
    if preview.attempt is None or not preview.ask:
        return NOTHING_TO_ASK
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return CLIENT_CANNOT_ASK
    app = cast(BleApp, ctx.request_context.lifespan_context)
    record = app.tracker.get(parse_address(preview.attempt.address))
    name = record.name if record else None
    return Elicit(question(preview.attempt, name, preview.typed), WriteApproval)


async def ask_write(ctx: Context, preview: Annotated[Preview, Resolve(preview_write)]) -> Any:
    return _ask(ctx, preview)


async def ask_descriptor_write(
    ctx: Context, preview: Annotated[Preview, Resolve(preview_descriptor_write)]
) -> Any:
    return _ask(ctx, preview)


async def ask_pair(ctx: Context, preview: Annotated[Preview, Resolve(preview_pair)]) -> Any:
    return _ask(ctx, preview)


def asking_mid_call(ctx: Any, app: BleApp) -> Approver | None:
    """On protocol 2025-11-25 the server can ask in the middle of any request: the approver for
    a write no write tool previewed (one a plugin makes, pairing while connecting). None when
    the client cannot ask (2026-07-28 has no mid-call requests; the core then refuses)."""
    capabilities = ctx.session.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return None

    async def approver(attempt: WriteAttempt, guard: WriteGuard) -> Decision:
        record = app.tracker.get(attempt.address)
        answer = await ctx.session.elicit_form(
            question(attempt, record.name if record else None),
            render_elicitation_schema(WriteApproval),
            related_request_id=ctx.request_id,
        )
        content = answer.content or {}
        if answer.action == "accept" and content.get("approve") is True:
            return Decision(True, "approved")
        return Decision(
            False,
            "declined",
            NotPermitted(
                f"{attempt.sentence()} was not approved; nothing was sent to the device",
                "ask the person what to do instead",
            ),
        )

    return approver


@contextlib.contextmanager
def approving(preview: Preview, outcome: ElicitationResult[WriteApproval]) -> Iterator[None]:
    """Install the approver the core's write policy consults for this tool call."""
    answer = getattr(outcome, "data", None)
    used = False

    fallback = current_approver.get()  # asks mid-call, where the protocol allows it

    async def approver(attempt: WriteAttempt, guard: WriteGuard) -> Decision:
        nonlocal used
        if (preview.attempt != attempt or used) and fallback is not None:
            return await fallback(attempt, guard)
        if preview.attempt != attempt or used:
            return Decision(
                False,
                "not_asked",
                NotPermitted(
                    f"{attempt.sentence()} needs a person's approval "
                    "(server.write_policy = 'confirm'), and the person was not asked about this "
                    "write (it differs from what they were shown, or a plugin made it); "
                    "nothing was sent",
                    "call the write tool again to be asked about exactly this write",
                ),
            )
        used = True
        if answer is CLIENT_CANNOT_ASK:
            return Decision(
                False,
                "cannot_ask",
                NotPermitted(
                    "This server asks a person to approve each write "
                    "(server.write_policy = 'confirm'), but this MCP client cannot ask (it "
                    "declared no elicitation support); nothing was sent",
                    "use a client that supports elicitation, or ask the operator to list the "
                    "pair in server.allowlist or to set server.write_policy = 'open'",
                ),
            )
        if isinstance(answer, WriteApproval) and answer.approve:
            return Decision(True, "approved")
        return Decision(
            False,
            "declined",
            NotPermitted(
                "The write was not approved; nothing was sent to the device",
                "ask the person what to do instead",
            ),
        )

    token = current_approver.set(approver)
    try:
        yield
    finally:
        current_approver.reset(token)
