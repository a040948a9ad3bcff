"""Every use of the MCP Python SDK's private or undocumented behaviour, in one place.

Checked against ``mcp`` 2.3.0 (``SDK_CHECKED``). When the SDK changes, this module is the one to
re-read against ``mcp/server/mcpserver/{server,tools/base,tools/tool_manager}.py``; the tests in
tests/core/test_mcp.py and tests/core/test_protocol.py fail if any assumption below stops holding.

What it relies on:

- ``Tool.run`` raises ``ToolError("Error executing tool <name>: <pydantic text>")`` whose
  ``__cause__`` is the ``pydantic.ValidationError`` when the arguments fail the input schema
  (a ``ToolError``, not its subclass ``UnexpectedToolError``). That is turned into our
  ``invalid_input`` tool error, without the prefix.
- ``MCPServer._tool_manager.get_tool(name)`` finds a registered tool, and
  ``MCPServer._prompt_manager.get_prompt(name)`` a prompt (used to answer an unknown name with
  JSON-RPC -32602 before the SDK turns it into a tool result or an error with code 0).
- ``Tool.from_function`` builds a tool whose ``parameters`` (the advertised input schema) and
  ``fn_metadata.output_schema`` (the advertised output schema) may be replaced by equivalent,
  leaner schemas: arguments are validated by the pydantic model, results by the output model,
  never by these JSON schemas.
- ``MCPServer._lowlevel_server.add_request_handler`` registers a handler for a request the
  high-level server has no hook for (2025-11-25 ``resources/subscribe``).
- ``ctx.session._connection`` is the client connection a request arrived on, alive as long as
  the client's session (``session_connection``).
- ``stdio_server()`` (``mcp/server/stdio.py``) puts a line that fails strict parsing on its read
  stream as the ``pydantic.ValidationError`` itself, whose first error has type ``json_invalid``
  and the line as ``input`` (a well-formed JSON value that is not a JSON-RPC message carries the
  parsed value); the server's read loop only logs such an item. ``run_stdio_async`` here runs
  ``MCPServer._lowlevel_server.run`` on a read stream that answers these items instead
  (core/not_unicode.py).
- ``MCPServer.streamable_http_app`` returns a Starlette app that takes ``add_middleware`` before
  it starts serving; the outermost middleware sees the POST body before the SDK parses it.
- A resolver's elicitation answer that does not fit its form (accepted with ``{}``) is a
  ``ToolError`` starting ``Resolver '<key>'`` and naming the elicitation, the ``__cause__`` of
  ``Tool.run``'s ``ToolError``; it becomes our ``not_permitted`` (``_unfit_answer``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    ToolAnnotations,
    jsonrpc_message_adapter,
)
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette

from . import not_unicode
from .errors import NotPermitted
from .outputs import lean_schema
from .tool_errors import error_result, invalid_arguments

SDK_CHECKED = "2.3.0"


class BleMCPServer(MCPServer[Any]):
    """``MCPServer`` with the error shapes the MCP spec gives: schema-invalid arguments become
    our ``invalid_input`` tool error; an unknown tool or prompt is a JSON-RPC -32602 error (spec
    server/tools "Error Handling": unknown tools are protocol errors; server/prompts: invalid
    prompt name and missing required arguments are -32602)."""

    async def call_tool(  # type: ignore[override]
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            raise MCPError(
                code=INVALID_PARAMS, message=f"Unknown tool: {name}", data={"name": name}
            )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(exc, UnexpectedToolError) and isinstance(cause, ValidationError):
                return invalid_arguments(name, cause, tool.parameters)
            if _unfit_answer(exc):
                return error_result(
                    NotPermitted(
                        "The person's answer did not fit the approval form (the client accepted "
                        "it without a true or false 'approve'); nothing was sent to the device",
                        "call the tool again and ask the person to tick or untick 'approve', "
                        "or use a client that returns the form's fields",
                    )
                )
            raise

    async def run_stdio_async(self) -> None:
        """As the SDK's, but every line gets an answer: text that is not valid Unicode gets
        -32602 with the request's id (core/not_unicode.py), text that is not JSON -32700."""
        async with stdio_server() as (read_stream, write_stream):
            await self._lowlevel_server.run(
                _AnsweringReadStream(read_stream, write_stream),
                write_stream,
                self._lowlevel_server.create_initialization_options(),
            )

    def streamable_http_app(self, **kwargs: Any) -> Starlette:
        """As the SDK's, with a request that is not valid Unicode answered like on stdio."""
        app = super().streamable_http_app(**kwargs)
        app.add_middleware(not_unicode.NotUnicodeMiddleware)
        return app

    async def get_prompt(  # type: ignore[override]
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        context: Context[Any, Any] | None = None,
    ) -> Any:
        prompt = self._prompt_manager.get_prompt(name)
        if prompt is None:
            known = ", ".join(p.name for p in self._prompt_manager.list_prompts())
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Unknown prompt: {name}" + (f"; the prompts are {known}" if known else ""),
                data={"name": name},
            )
        missing = [
            a.name
            for a in prompt.arguments or []
            if a.required and not (arguments and arguments.get(a.name))
        ]
        if missing:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Prompt {name} needs the argument(s) {', '.join(missing)}",
                data={"name": name, "missing": missing},
            )
        return await super().get_prompt(name, arguments, context)


def _unfit_answer(exc: ToolError) -> bool:
    """Whether a resolver (core/approval.py's ``ask_*``) got an elicitation answer that does not
    fit its form: the SDK raises ``ToolError("Resolver '<key>'...elicitation...")`` (on
    2025-11-25 around the ``ValueError`` of ``ctx.elicit``), wrapped by ``Tool.run``."""
    cause = exc.__cause__
    return (
        isinstance(cause, ToolError)
        and str(cause).startswith("Resolver ")
        and "elicitation" in str(cause)
    )


class _AnsweringReadStream:
    """The stdio read stream, with the lines the SDK could not parse answered (JSON-RPC 2.0
    section 5: a parse error or invalid request gets an error response, id null when it could
    not be read) or, when they only hold text that is not valid Unicode, rewritten for
    :func:`not_unicode.answer`."""

    def __init__(self, inner: Any, write: Any) -> None:
        self._inner = inner
        self._write = write

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        while True:
            item = await self._inner.receive()
            if not isinstance(item, ValidationError):
                return item
            errors = item.errors()
            raw = errors[0].get("input") if errors else None
            if errors and errors[0]["type"] == "json_invalid" and isinstance(raw, str):
                new = not_unicode.rewrite(raw)
                if new is not None:
                    message = jsonrpc_message_adapter.validate_json(new, by_name=False)
                    return SessionMessage(message)
                error = ErrorData(code=PARSE_ERROR, message="Parse error: the line is not JSON")
                await self._write.send(
                    SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error))
                )
                continue
            if isinstance(raw, dict) and ("result" in raw or "error" in raw):
                continue  # a malformed response from the client: nothing to answer
            ident = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(ident, bool) or not isinstance(ident, (int, str)):
                ident = None
            error = ErrorData(code=INVALID_REQUEST, message="Invalid Request: not JSON-RPC")
            await self._write.send(
                SessionMessage(JSONRPCError(jsonrpc="2.0", id=ident, error=error))
            )

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _AnsweringReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AnsweringReadStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def make_tool(fn: Callable[..., Any], annotations: ToolAnnotations) -> Tool:
    """A tool for ``fn`` with lean schemas (no titles, no null branches, no ``$ref``) and its
    docstring on one line."""
    made = Tool.from_function(fn, annotations=annotations)
    made.description = " ".join((made.description or "").split())
    made.parameters = lean_schema(made.parameters)
    schema = made.fn_metadata.output_schema
    if schema is not None:
        made.fn_metadata.output_schema = lean_schema(schema, output=True)
    return made


def add_request_handler(
    mcp: MCPServer[Any],
    method: str,
    params: type[BaseModel],
    handler: Callable[[Any, Any], Awaitable[Any]],
) -> None:
    """Handle a request ``MCPServer`` has no public hook for, on its low-level server."""
    mcp._lowlevel_server.add_request_handler(method, params, handler)


def wrap_request_handler(
    mcp: MCPServer[Any],
    method: str,
    wrap: Callable[[Callable[[Any, Any], Awaitable[Any]]], Callable[[Any, Any], Awaitable[Any]]],
) -> bool:
    """Replace the handler ``MCPServer`` registered for ``method`` with ``wrap(handler)``;
    False when it registered none."""
    server = mcp._lowlevel_server
    entry = server.get_request_handler(method)
    if entry is None:
        return False
    server.add_request_handler(method, entry.params_type, wrap(entry.handler))
    return True


def session_connection(ctx: Any) -> Any:
    """The client connection a request arrived on. ``ctx.session`` is a per-request proxy;
    the connection lives as long as the client's session, so state kept per client is keyed
    (weakly) by it and goes when the session ends."""
    return ctx.session._connection


__all__ = [
    "SDK_CHECKED",
    "BleMCPServer",
    "add_request_handler",
    "make_tool",
    "session_connection",
    "wrap_request_handler",
]
