"""The MCP server: the tools (modules ``tools_*``), resources and prompts (``prompts``) over a
BleApp.

Tools are module-level functions that reach the app through the request context; the server's
lifespan yields the app. Every failure becomes a tool error with a stable code
(:mod:`mcp_ble.core.tool_errors`); anything unexpected is logged with its traceback on stderr and
the server keeps serving.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from prometheus_client import generate_latest

from . import (
    __version__,
    not_unicode,
    prompts,
    resources,
    tools_discovery,
    tools_gatt,
    tools_links,
    tools_notify,
)
from .app import BleApp
from .compat import BleMCPServer, add_request_handler, make_tool
from .gatt import label
from .session_middleware import session_owner_middleware
from .toolkit import REGISTRY

INSTRUCTIONS = """\
Bluetooth Low Energy access. Typical flow: ble_scan -> ble_connect(address) -> ble_services ->
ble_read / ble_write / ble_subscribe + ble_notifications -> ble_disconnect. Characteristics are
named by UUID ('2a19' or full) or value handle ('#14'). A result leaves out empty fields and what
the arguments already said. Check ble_status first: when it says simulated=true the devices are
virtual, not real hardware."""

#: The tool modules, imported for their registrations (in tools/list order).
TOOL_MODULES = (tools_discovery, tools_links, tools_gatt, tools_notify)


def build_server(
    app: BleApp,
    manage_app: bool = True,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
) -> MCPServer:
    """The MCP server for ``app``. With ``manage_app`` the server's lifespan starts and closes
    the app; pass False when the caller manages it (several sessions on one app).
    ``token_verifier`` and ``auth`` protect the HTTP transport (core/http.py)."""

    @contextlib.asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[BleApp]:
        if manage_app:
            async with app:
                yield app
        else:
            yield app

    bus = InMemorySubscriptionBus()
    mcp = BleMCPServer(
        "mcp-ble",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        subscriptions=bus,
        tools=[make_tool(fn, annotations) for fn, annotations in REGISTRY],
        token_verifier=token_verifier,
        auth=auth,
        middleware=[session_owner_middleware(app)],
    )
    resources.install(mcp, app, bus)
    prompts.install(mcp)
    # The request a message holding text that is not valid Unicode becomes (core/not_unicode.py).
    add_request_handler(mcp, not_unicode.METHOD, not_unicode.NotUnicodeParams, not_unicode.answer)

    @mcp.resource(
        "ble://metrics",
        name="metrics",
        description="Prometheus text exposition of the server's metrics",
        mime_type="text/plain; version=0.0.4",
    )
    async def metrics_resource() -> str:
        return metrics_text(app)

    return mcp


def metrics_text(app: BleApp) -> str:
    """The app's metrics in Prometheus text format, sampled gauges refreshed first."""
    app.collect_metrics()
    return generate_latest(app.metrics_registry).decode()


__all__ = ["TOOL_MODULES", "build_server", "label", "metrics_text"]
