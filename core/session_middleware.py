"""Each MCP request runs as its session's owner (core/sessions.py), and a session that ends
releases what only it held.

A server middleware (the SDK's ``ServerMiddleware``, which wraps every inbound message) names the
owner for the request in a context variable. On the 2025-11-25 protocol the owner is the client
connection, which lives as long as the session: the first request on it registers the release on
the connection's ``exit_stack``, which the SDK unwinds when the connection closes, however it
closes (the client ends the session, stdio closes, the HTTP session is deleted or times out after
``server.http_session_idle_s``). On 2026-07-28 every request stands alone, so requests share the
owner ``None``.
"""

from __future__ import annotations

import uuid
from typing import Any

from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .app import BleApp
from .approval import asking_mid_call
from .compat import session_connection
from .policy import current_approver, current_session

STATE_KEY = "mcp_ble.owner"


def session_owner_middleware(app: BleApp) -> Any:
    async def middleware(ctx: Any, call_next: Any) -> Any:
        owner: str | None = None
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            connection = session_connection(ctx)
            owner = connection.state.get(STATE_KEY)
            if owner is None:
                owner = uuid.uuid4().hex[:12]
                connection.state[STATE_KEY] = owner
                connection.exit_stack.push_async_callback(app.release_session, owner)
        token = current_session.set(owner)
        # 2025-11-25 can ask the person mid-call: writes no write tool previewed get asked too.
        asker = None if owner is None else asking_mid_call(ctx, app)
        approver = current_approver.set(asker)
        try:
            return await call_next(ctx)
        finally:
            current_approver.reset(approver)
            current_session.reset(token)

    return middleware
