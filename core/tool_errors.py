"""How a failed tool call looks to the client: one shape for every failure.

An error result carries:

- ``content``: one text block the model reads, ``"<code>: <what happened>. <what to do next>"``;
- ``isError: true``;
- NO ``structuredContent``. The MCP spec (server/tools, "Output Schema") says structured content
  MUST conform to the tool's output schema, and an error is not a result of that shape. Clients
  built on the TypeScript SDK 1.x (and the MCP Inspector) validate structured content even when
  ``isError`` is true, and then show only the schema error instead of ours;
- ``_meta["mcp-ble/error"]``: the machine-readable form, ``{"code", "kind", "hint", "retryable"}``
  (plus ``att_code`` for a GATT refusal). ``_meta`` is the spec's place for data beside the result
  (basic/index, "_meta"); no client validates it against anything.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from .errors import BleError, ConfigError, GattError

log = logging.getLogger("mcp_ble.server")
P = ParamSpec("P")
R = TypeVar("R")

#: The ``_meta`` key of an error result's machine-readable details ("mcp-ble/" prefix per the
#: spec's _meta key naming: a prefix of DNS-style labels, then a slash).
ERROR_META_KEY = "mcp-ble/error"

INVALID_INPUT_HINT = "Call it again with the argument corrected"


def error_result(exc: BaseException) -> CallToolResult:
    """The tool error for ``exc``: readable text with the code, details under ``_meta``."""
    if isinstance(exc, BleError):
        code, kind, what, hint = exc.code, exc.kind, exc.what, exc.hint
    elif isinstance(exc, ConfigError):
        code, kind, what = "config_error", "fatal", exc.what
        hint = exc.hint or "Fix the settings ('mcp-ble config show' prints them) and restart"
    else:
        code, kind, hint = "internal_error", "fatal", "Retry, and report this if it persists"
        what = f"Internal error ({type(exc).__name__}: {exc}); the server is still running"
    info: dict[str, Any] = {"code": code, "kind": kind}
    if hint:
        info["hint"] = hint
    info["retryable"] = kind in ("transient", "backoff")
    if isinstance(exc, GattError):
        info["att_code"] = exc.att_code
    return make_error(f"{code}: {what}. {hint}" if hint else f"{code}: {what}", info)


def make_error(text: str, info: dict[str, Any]) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        is_error=True,
        _meta={ERROR_META_KEY: info},
    )


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | CallToolResult]]:
    """Turn every failure into a tool error with a readable message and a stable code; never
    leak a traceback, never stop serving."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except (BleError, ConfigError) as exc:
            return error_result(exc)
        except Exception as exc:
            log.exception("tool %s failed unexpectedly", fn.__name__)
            return error_result(exc)

    return wrapper


# --------------------------------------------------------------------------- schema-level input


def invalid_arguments(
    tool: str, exc: ValidationError, input_schema: Mapping[str, Any]
) -> CallToolResult:
    """An ``invalid_input`` error for arguments the input schema refuses (wrong type, missing,
    not one of the allowed values): each offending argument named, with what it expects."""
    properties: Mapping[str, Any] = input_schema.get("properties", {})
    problems: dict[str, str] = {}
    for err in exc.errors():
        loc = err.get("loc") or ("arguments",)
        name = str(loc[0])
        if name in problems:
            continue  # a union reports one error per member; the expectation covers them all
        expected = describe(properties.get(name, {}))
        if err.get("type") == "missing":
            problems[name] = f"{name} is required" + (f" (expected {expected})" if expected else "")
        else:
            got = err.get("input")
            shown = _shown(got)
            expected = expected or err.get("msg", "").removeprefix("Input should be ")
            problems[name] = f"{name}={shown} is not valid (expected {expected})"
    text = "; ".join(problems.values()) or f"the arguments of {tool} are not valid"
    info = {
        "code": "invalid_input",
        "kind": "fatal",
        "hint": INVALID_INPUT_HINT,
        "retryable": False,
        "arguments": sorted(problems),
    }
    return make_error(f"invalid_input: {text}. {INVALID_INPUT_HINT}", info)


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(schema: Mapping[str, Any]) -> str:
    """What a JSON schema accepts, in a few words: 'an integer from 1 to 1000',
    'one of "hex", "utf8", "base64"', 'true, false or "auto"'."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        parts = [describe(o) for o in options if o.get("type") != "null"]
        return _join([p for p in parts if p], "or").replace("true or false or", "true, false or")
    if "enum" in schema:
        return "one of " + ", ".join(_shown(v) for v in schema["enum"])
    if "const" in schema:
        return _shown(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return _join([describe({**schema, "type": k}) for k in kind if k != "null"], "or")
    words = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "array": "a list",
        "object": "an object",
    }.get(str(kind), "")
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if words and low is not None and high is not None:
        words += f" from {low} to {high}"
    elif words and low is not None:
        words += f" >= {low}" if "minimum" in schema else f" > {low}"
    elif words and high is not None:
        words += f" <= {high}" if "maximum" in schema else f" < {high}"
    return words


def _join(parts: list[str], word: str) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {word} " + parts[-1]
