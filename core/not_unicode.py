"""Requests whose JSON holds text that is not valid Unicode get an answer, with their id.

A string escape for a lone surrogate (``"\\uD800"`` with no low surrogate after it) is grammatical
JSON (RFC 8259 section 8.2 leaves such strings' behaviour unpredictable) and Python's ``json.loads``
accepts it, but the string is not valid Unicode and the MCP SDK's strict parser rejects the whole
message. Left to the SDK, stdio drops the line without a reply and HTTP answers 400 with a bare
-32700 and id null, so the client waits for its timeout or fails its transport.

Here such a request is rewritten, before the SDK parses it, into the request :data:`METHOD` with
the same id, which the server answers with JSON-RPC -32602 (invalid params) naming the argument and
saying how to send bytes instead. Text that is not JSON at all still gets -32700 (on stdio with id
null, JSON-RPC 2.0 section 5, instead of silence).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pydantic_core
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

#: The request a not-Unicode request becomes; clients never send it (the name is not MCP's).
METHOD = "mcp-ble/not-unicode"

# A \uD800-\uDFFF escape: only a message with one can hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class NotUnicodeParams(BaseModel):
    method: str
    where: str
    tool: str | None = None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _first_bad(value: Any, path: str) -> str | None:
    """The path of the first string (or key) in ``value`` that is not valid Unicode."""
    if isinstance(value, str):
        return None if _is_unicode(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{_show(key)}" if path else _show(key)
            if not _is_unicode(key):
                return where
            found = _first_bad(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_bad(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def rewrite(raw: bytes | str) -> bytes | None:
    """The replacement for a request that only fails strict parsing because of text that is not
    valid Unicode; None for anything else (left to the SDK, which parses it as usual)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if not _SURROGATE_ESCAPE.search(data):
        return None
    try:
        pydantic_core.from_json(data)
        return None  # escapes that pair up: valid
    except ValueError:
        pass
    try:
        message = json.loads(data)
    except ValueError:  # UnicodeDecodeError is one
        return None
    if not isinstance(message, dict):
        return None
    method, ident, params = message.get("method"), message.get("id"), message.get("params")
    if not isinstance(method, str) or not _is_unicode(method):
        return None
    if isinstance(ident, bool) or not isinstance(ident, (int, str)):
        return None  # a notification gets no answer
    if isinstance(ident, str) and not _is_unicode(ident):
        return None  # an id that cannot be echoed
    tool = None
    where = _first_bad(params, "")
    if method == "tools/call" and isinstance(params, dict):
        name, arguments = params.get("name"), params.get("arguments")
        if isinstance(name, str) and _is_unicode(name):
            tool = name
            found = _first_bad(arguments, "")
            where = found if found is not None else where
    if where is None:
        return None
    out = {
        "jsonrpc": "2.0",
        "id": ident,
        "method": METHOD,
        "params": {"method": method, "where": where or "params", "tool": tool},
    }
    return json.dumps(out, separators=(",", ":")).encode()


async def answer(ctx: Any, params: NotUnicodeParams) -> Any:
    """The answer to a rewritten request: JSON-RPC -32602 naming what was not valid Unicode."""
    if params.tool:
        what = f"argument {params.where} of {params.tool}"
        fix = 'send bytes as hex or base64 with encoding="hex" or "base64"'
    else:
        what, fix = params.where, "send it as UTF-8 text"
    raise MCPError(
        code=INVALID_PARAMS,
        message=(
            f"{params.method}: {what} is not valid Unicode text (it holds a lone surrogate "
            f"escape); {fix}"
        ),
        data={"argument": params.where} if params.tool else {"where": params.where},
    )


def _modern(scope: Any) -> bool:
    """A request on a stateless revision (2026-07-28): the SDK parses its body with
    ``json.loads``, so the text reaches the tool, which refuses it as ``invalid_input``; and a
    rewritten method would no longer match the request's routing headers."""
    for key, value in scope["headers"]:
        if key.lower() == b"mcp-protocol-version":
            return value.decode("latin-1") in MODERN_PROTOCOL_VERSIONS
    return False


class NotUnicodeMiddleware:
    """ASGI middleware for the HTTP transport: a POST body that :func:`rewrite` rewrites is
    replaced before the SDK app (bearer token, Host/Origin and session checks included) sees it.
    Bodies larger than ``limit`` pass unread; the SDK's own size limit applies to them."""

    def __init__(self, app: Any, limit: int = 4 * 1024 * 1024) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _modern(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and size <= self.limit:
            event = await receive()
            if event["type"] != "http.request":  # the client went away
                replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": True}]
                replay.append(event)
                break
            chunks.append(event.get("body", b""))
            size += len(chunks[-1])
            more = event.get("more_body", False)
        else:
            body = b"".join(chunks)
            new = None if more else rewrite(body)
            if new is not None:
                body = new
                headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
                scope = {**scope, "headers": [*headers, (b"content-length", b"%d" % len(body))]}
            replay = [{"type": "http.request", "body": body, "more_body": more}]

        async def replayed() -> Any:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replayed, send)
