"""MCP resources for notification buffers, with "resource updated" pushed to subscribed clients.

``ble://notifications/{address}/{handle}`` is a read-only view of one subscription's buffer (the
latest values, counts, whether it is active); reading it drains nothing. When notifications
arrive, clients that subscribed to that URI are told it changed — on the 2026-07-28 protocol
through the SDK's subscription bus (``subscriptions/listen``), on 2025-11-25 through
``resources/subscribe`` and ``notifications/resources/updated``. Updates are coalesced to at most
one per URI per ``min_interval_s``, so a notification storm cannot flood the client.

``ble://sensors`` is the sensor readings decoded from advertisements heard within
``server.recent_s`` (what ``ble_sensors`` lists, without listening). Its "resource updated" is
pushed when a device's readings change (a new value or a new measurement, not a repeated
advertisement), coalesced the same way.

The publisher is an ordinary plugin on the app's ``mcp_ble_notification`` hook, and a listener of
the app's sensor store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from .app import BleApp, Subscription
from .compat import add_request_handler, session_connection, wrap_request_handler
from .decoding import NO_DECODERS, Codec
from .errors import BleError
from .hookspecs import hookimpl
from .outputs import uuid_label, value_fields
from .readings import sensor_out
from .sensor_watch import SensorWatch
from .toolkit import compact_json
from .values import parse_address, shown

log = logging.getLogger("mcp_ble.resources")
LATEST = 10


_URI = re.compile(r"^ble://notifications/([^/]{1,64})/([1-9][0-9]{0,4})$")
SENSORS_URI = "ble://sensors"


def notification_uri(address: str, handle: int) -> str:
    return f"ble://notifications/{address}/{handle}"


def _key(uri: str) -> tuple[str, int] | None:
    """(address, handle) of a URI this server made (canonical already)."""
    match = _URI.match(uri)
    return (match.group(1), int(match.group(2))) if match else None


def notification_body(sub: Subscription, codec: Codec = NO_DECODERS) -> str:
    """The resource's JSON, compact and lean like tool results: the characteristic's UUID (the
    URI names the device and handle), counts, why it ended if it has, and the latest values."""
    body: dict[str, Any] = {
        "uuid": uuid_label(sub.uuid),
        "buffered": len(sub.items),
        "received": sub.received,
    }
    if sub.dropped:
        body["dropped"] = sub.dropped
    if not sub.active:
        body["ended"] = sub.ended or "ended"
    body["latest"] = [value_fields(sub.uuid, data, codec) for _, data in list(sub.items)[-LATEST:]]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class NotificationPublisher:
    """Turns notifications into coalesced "resource updated" events."""

    def __init__(self, bus: InMemorySubscriptionBus, min_interval_s: float = 0.05) -> None:
        self.bus = bus
        self.min_interval_s = min_interval_s
        #: Client connection -> the URIs it subscribed to on 2025-11-25. Held weakly: an entry
        #: goes with its connection when the session ends.
        self.legacy: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        self.pending: set[str] = set()
        self.published = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @hookimpl
    def mcp_ble_notification(self, address: str, handle: int, data: bytes) -> None:
        self.changed(notification_uri(address, handle))

    def sensors_changed(self, address: str) -> None:
        """A sensor store listener: ``address``'s readings changed."""
        self.changed(SENSORS_URI)

    def changed(self, uri: str) -> None:
        """``uri`` changed: tell its subscribers within ``min_interval_s``, once."""
        self.pending.add(uri)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.min_interval_s, self._flush)

    def _flush(self) -> None:
        self._timer = None
        uris, self.pending = self.pending, set()
        task = asyncio.get_running_loop().create_task(self._publish(uris))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, uris: set[str]) -> None:
        for uri in uris:
            self.published += 1
            await self.bus.publish(ResourceUpdated(uri=uri))
            for connection, uris in list(self.legacy.items()):
                if uri in uris:  # Connection.notify never raises: a closed stream drops it
                    await connection.notify("notifications/resources/updated", {"uri": uri})

    @hookimpl
    def mcp_ble_shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()


def _gone(app: BleApp, uri: str) -> bool:
    """Whether a subscribed URI names a buffer that no longer exists."""
    if uri == SENSORS_URI:
        return False
    key = _key(uri)
    return key is None or app.sessions.mine(*key) is None


def sensors_body(app: BleApp) -> str:
    """``ble://sensors``: every device with readings heard within ``server.recent_s``, most
    recently heard first, as ``ble_sensors`` lists them."""
    now = app.now()
    found = app.sensors.query(app.settings.server.recent_s)
    return compact_json({"sensors": [sensor_out(d, now).dump() for d in found]})


def install_sensors(
    mcp: MCPServer, app: BleApp, publisher: NotificationPublisher, watch: SensorWatch
) -> None:
    """``ble://sensors``, updated whenever the sensor store reports a change; while a
    ``subscriptions/listen`` stream names it, ``watch`` listens for advertisements."""
    app.sensors.add_listener(publisher.sensors_changed)

    def wrap(inner: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
        async def listen(ctx: Any, params: Any) -> Any:
            wanted = getattr(params.notifications, "resource_subscriptions", None) or ()
            if SENSORS_URI not in wanted:
                return await inner(ctx, params)
            stream = object()
            watch.hold(stream)
            try:
                return await inner(ctx, params)
            finally:
                watch.release(stream)

        return listen

    wrap_request_handler(mcp, "subscriptions/listen", wrap)

    @mcp.resource(
        SENSORS_URI,
        name="sensors",
        description="Sensor readings decoded from advertisements heard recently (as ble_sensors "
        "lists them). Subscribe to be told when they change: the server listens while "
        "anyone subscribes.",
        mime_type="application/json",
    )
    async def sensors_resource() -> str:
        return sensors_body(app)


def existing(app: BleApp, uri: str) -> str:
    """``uri`` if it names ``ble://sensors`` or a notification buffer that exists; else a
    JSON-RPC error."""
    if uri == SENSORS_URI:
        return uri
    match = _URI.match(uri) if len(uri) <= 128 else None
    key = None
    if match:
        with contextlib.suppress(BleError):
            key = (parse_address(match.group(1)), int(match.group(2)))
    if key is None:
        raise MCPError(
            INVALID_PARAMS,
            f"'{shown(uri)}' is not a resource of this server; subscribe to ble://sensors "
            "or to the URI ble_subscribe returned (ble://notifications/{address}/{handle})",
        )
    if app.sessions.mine(*key) is None:
        raise MCPError(
            INVALID_PARAMS,
            f"No subscription for {key[0]} handle {key[1]}; call ble_subscribe first",
        )
    return notification_uri(*key)


def install(mcp: MCPServer, app: BleApp, bus: InMemorySubscriptionBus) -> NotificationPublisher:
    publisher = NotificationPublisher(bus)
    app.add_plugin("mcp-resources", publisher)
    watch = SensorWatch(app)
    app.add_plugin("sensor-watch", watch)
    install_sensors(mcp, app, publisher, watch)

    @mcp.resource(
        "ble://notifications/{address}/{handle}",
        name="notifications",
        description="One subscription's buffer: the latest values and counts (read-only; "
        "ble_notifications drains it). Subscribe to be told when notifications arrive.",
        mime_type="application/json",
    )
    async def notifications_resource(address: str, handle: str) -> str:
        key = None
        if handle.isdecimal() and len(handle) <= 5:
            with contextlib.suppress(BleError):
                key = (parse_address(address), int(handle))
        if key is None:
            # A malformed URI is an invalid parameter of resources/read: JSON-RPC -32602.
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Malformed resource URI 'ble://notifications/{shown(address)}/"
                f"{shown(handle)}': expected ble://notifications/<address>/<handle>, as "
                "ble_subscribe returns it",
            )
        sub = app.sessions.mine(*key)  # only this session's buffer (core/sessions.py)
        if sub is None:
            # Not found: -32602, as the SDK answers for an unknown resource.
            raise ResourceNotFoundError(
                f"No subscription for {key[0]} handle {key[1]}; call ble_subscribe first"
            )
        return notification_body(sub, app.codec)

    async def on_subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        uri = existing(app, str(params.uri))
        connection = session_connection(ctx)
        uris = publisher.legacy.setdefault(connection, set())
        # What a client holds is bounded by the buffers that still exist.
        uris -= {u for u in uris if _gone(app, u)}
        uris.add(uri)
        if uri == SENSORS_URI and connection not in watch.holders:
            watch.hold(connection)  # until it unsubscribes or its session ends, however
            connection.exit_stack.callback(watch.release, connection)
        return EmptyResult()

    async def on_unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        connection = session_connection(ctx)
        if str(params.uri) == SENSORS_URI:
            watch.release(connection)
        uris = publisher.legacy.get(connection)
        if uris is not None:
            uris.discard(str(params.uri))
            if not uris:
                del publisher.legacy[connection]
        return EmptyResult()

    # MCPServer has no public hook for the 2025-11-25 resources/subscribe request (defined at
    # https://modelcontextprotocol.io/specification/2025-11-25/server/resources#subscriptions).
    add_request_handler(mcp, "resources/subscribe", SubscribeRequestParams, on_subscribe)
    add_request_handler(mcp, "resources/unsubscribe", UnsubscribeRequestParams, on_unsubscribe)
    return publisher
