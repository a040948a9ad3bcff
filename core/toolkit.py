"""What every tool module shares: the registry, annotations, argument types, and the app lookup.

Tools are module-level ``async def`` functions. They reach the app through the request context
(the server's lifespan yields it), parse arguments, call the app, and return a lean result model
(:mod:`mcp_ble.core.outputs`); every failure becomes a tool error (:mod:`mcp_ble.core.tool_errors`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from .app import BleApp
from .outputs import Lean
from .tool_errors import tool_errors

# Hints at their spec defaults (readOnlyHint false, openWorldHint true, idempotentHint false)
# are left out: the MCP spec (server/tools, ToolAnnotations) gives a client the same meaning
# for an absent hint. destructiveHint is spelled out either way.
READ_ONLY = ToolAnnotations(read_only_hint=True)
LINK = ToolAnnotations(destructive_hint=False, idempotent_hint=True)
WRITE = ToolAnnotations(destructive_hint=True)

CharacteristicArg = Annotated[str | int, Field(description="UUID or handle ('#14')")]
#: A device address as ble_scan lists it (described once, on ble_connect: the name says it).
AddressArg = str

#: (function, annotations) of every tool, in the order tools/list shows them.
REGISTRY: list[tuple[Callable[..., Any], ToolAnnotations]] = []


def tool(annotations: ToolAnnotations) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a module-level tool function (errors turned into tool errors, results lean)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.append((lean_text(tool_errors(fn)), annotations))
        return fn

    return register


def app_of(ctx: Context) -> BleApp:
    """The app this server serves (what the server's lifespan yielded)."""
    return cast(BleApp, ctx.request_context.lifespan_context)


def lean_text(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Return a lean result as structured content with the same JSON, compact, as its text.

    The SDK's default text copy is indented JSON with every null field; agents read that text,
    and the compact form of the lean dump is a fraction of it with the same content."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = await fn(*args, **kwargs)
        if not isinstance(result, Lean):
            return result  # errors are already complete results
        data = result.dump()
        return CallToolResult(
            content=[TextContent(type="text", text=compact_json(data))],
            structured_content=data,
        )

    return wrapper


def compact_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
