"""The MCP layer: tools with exact names, structured output and annotations, over a BleApp.

Tools are thin: parse arguments, call the app, shape the answer. Every BleError becomes a tool
error whose text says what went wrong and what to do next; anything unexpected becomes a tool
error too (logged with its traceback on stderr) and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.tools import Tool
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from prometheus_client import generate_latest
from pydantic import BaseModel, Field

from . import __version__, resources
from .app import BleApp, Subscription
from .approval import (
    Preview,
    WriteApproval,
    approving,
    ask_descriptor_write,
    ask_pair,
    ask_write,
    preview_descriptor_write,
    preview_pair,
    preview_write,
)
from .compat import BleMCPServer
from .errors import BleError, InvalidInput
from .gatt import label
from .models import GattCharacteristic, ScanFilter
from .session_middleware import session_owner_middleware
from .sessions import current_owner
from .sig import company_name, decode, printable_text, short_uuid, uuid_name
from .tool_errors import tool_errors
from .tracker import DeviceRecord
from .values import (
    parse_address,
    parse_name_filter,
    parse_uuid,
    parse_value,
    shown_number,
)

log = logging.getLogger("mcp_ble.server")
P = ParamSpec("P")
R = TypeVar("R")

INSTRUCTIONS = """\
Bluetooth Low Energy access. Typical flow: ble_scan -> ble_connect(address) -> ble_services ->
ble_read / ble_write / ble_subscribe + ble_notifications -> ble_disconnect. Characteristics are
named by full UUID, 16-bit UUID ('2a19') or handle ('#14'). Check ble_status first: when it says
simulated=true the devices are virtual, not real hardware."""


# --------------------------------------------------------------------------- output models


class UuidInfo(BaseModel):
    uuid: str = Field(description="full 128-bit UUID")
    short: str | None = Field(None, description="16-bit form for SIG UUIDs")
    name: str | None = Field(None, description="Bluetooth SIG or well-known vendor name")


def uuid_info(uuid: str) -> UuidInfo:
    return UuidInfo(uuid=uuid, short=short_uuid(uuid), name=uuid_name(uuid))


class ManufacturerData(BaseModel):
    company_id: int
    company: str | None
    data_hex: str


class ServiceData(BaseModel):
    service: UuidInfo
    data_hex: str


class DeviceOut(BaseModel):
    address: str
    name: str | None
    rssi: int = Field(description="last received signal strength, dBm")
    tx_power: int | None
    connectable: bool
    seen_s_ago: float = Field(description="seconds since the last advertisement")
    advertisements: int = Field(description="advertisements heard from this device")
    services: list[UuidInfo]
    manufacturer_data: list[ManufacturerData]
    service_data: list[ServiceData]


def device_out(record: DeviceRecord, now: float) -> DeviceOut:
    return DeviceOut(
        address=record.address,
        name=record.name,
        rssi=record.rssi,
        tx_power=record.tx_power,
        connectable=record.connectable,
        seen_s_ago=round(max(0.0, now - record.last_seen), 3),
        advertisements=record.seen_count,
        services=[uuid_info(u) for u in record.service_uuids],
        manufacturer_data=[
            ManufacturerData(company_id=cid, company=company_name(cid), data_hex=data.hex())
            for cid, data in record.manufacturer_data.items()
        ],
        service_data=[
            ServiceData(service=uuid_info(u), data_hex=data.hex())
            for u, data in record.service_data.items()
        ],
    )


class ScanResult(BaseModel):
    devices: list[DeviceOut] = Field(description="matching devices, strongest signal first")
    matched: int = Field(description="devices that matched the filters")
    advertisements_heard: int
    duration_s: float = Field(
        description="how long the scan ran, on the backend's clock (simulated seconds when "
        "simulated is true)"
    )
    simulated: bool = Field(description="true when the devices are virtual (simulated backend)")
    notes: list[str] = Field(description="what plugins changed about this scan, and why")


class DevicesResult(BaseModel):
    devices: list[DeviceOut]
    simulated: bool


class AttributeRef(BaseModel):
    uuid: str
    short: str | None
    name: str | None
    handle: int


def char_ref(char: GattCharacteristic) -> AttributeRef:
    return AttributeRef(
        uuid=char.uuid, short=short_uuid(char.uuid), name=uuid_name(char.uuid), handle=char.handle
    )


class ConnectResult(BaseModel):
    address: str
    connected: bool
    already_connected: bool
    mtu: int = Field(description="negotiated ATT MTU; write without response carries mtu-3 bytes")
    attempts: int
    notes: list[str] = Field(description="what plugins did for this connection, and why")


class PairResult(BaseModel):
    address: str
    paired: bool


class DisconnectResult(BaseModel):
    address: str
    was_connected: bool
    other_sessions: int = Field(
        0, description="other MCP sessions still using the link: it stays up for them"
    )


class SubscriptionOut(BaseModel):
    characteristic: AttributeRef
    active: bool
    buffered: int
    received: int
    dropped: int


class ConnectionOut(BaseModel):
    address: str
    name: str | None
    mtu: int
    connected_for_s: float
    idle_s: float
    subscriptions: list[SubscriptionOut] = Field(description="this MCP session's subscriptions")
    other_sessions_subscriptions: int = Field(
        0, description="active subscriptions other MCP sessions hold on this link"
    )


class ConnectionsResult(BaseModel):
    connections: list[ConnectionOut]


class DescriptorOut(BaseModel):
    uuid: str
    short: str | None
    name: str | None
    handle: int


class ValueOut(BaseModel):
    hex: str
    length: int
    text: str | None = Field(None, description="the value as text when it is printable UTF-8")
    decoded: dict[str, Any] | None = Field(
        None, description="interpretation for well-known characteristics"
    )


def value_out(uuid: str, data: bytes) -> ValueOut:
    return ValueOut(
        hex=data.hex(), length=len(data), text=printable_text(data), decoded=decode(uuid, data)
    )


class CharacteristicOut(BaseModel):
    uuid: str
    short: str | None
    name: str | None
    handle: int = Field(description="value handle; usable as characteristic='#<handle>'")
    properties: list[str]
    descriptors: list[DescriptorOut]
    value: ValueOut | None = Field(
        None, description="with read_values: the current value of a readable characteristic"
    )
    error: str | None = Field(None, description="with read_values: why reading it failed")


class ServiceOut(BaseModel):
    uuid: str
    short: str | None
    name: str | None
    handle: int
    characteristics: list[CharacteristicOut]


class ServicesResult(BaseModel):
    address: str
    services: list[ServiceOut]


class ReadResult(BaseModel):
    """Flat on purpose: ``ble_read`` is the hot path, and every field is validated by the client
    against the output schema and paid for in the agent's tokens."""

    address: str
    uuid: str = Field(description="the characteristic's full UUID")
    name: str | None = Field(description="its SIG name, when it has one")
    handle: int = Field(description="its value handle; usable as characteristic='#<handle>'")
    hex: str
    text: str | None = Field(description="the value as text when it is printable UTF-8")
    decoded: dict[str, Any] | None = Field(
        description="interpretation for well-known characteristics"
    )


class WriteResult(BaseModel):
    address: str
    characteristic: AttributeRef
    bytes_written: int
    with_response: bool
    chunks: int
    notes: list[str]


class DescriptorReadResult(BaseModel):
    address: str
    characteristic: AttributeRef
    descriptor: DescriptorOut
    value: ValueOut


class DescriptorWriteResult(BaseModel):
    address: str
    characteristic: AttributeRef
    descriptor: DescriptorOut
    bytes_written: int


class SubscribeResult(BaseModel):
    address: str
    characteristic: AttributeRef
    already_subscribed: bool
    buffer_size: int = Field(description="notifications kept; older ones are dropped and counted")
    notes: list[str] = Field(description="what plugins decided about this subscription")
    resource: str = Field(
        description="MCP resource of this buffer; subscribe to it to be told when values arrive"
    )


class UnsubscribeResult(BaseModel):
    address: str
    characteristic: AttributeRef
    received: int
    dropped: int
    undelivered: int = Field(description="buffered notifications discarded by unsubscribing")


class NotificationOut(BaseModel):
    time: str = Field(description="arrival time, ISO 8601 UTC")
    value: ValueOut


class NotificationsResult(BaseModel):
    address: str
    characteristic: AttributeRef
    notifications: list[NotificationOut]
    remaining: int = Field(description="still buffered after this call")
    received: int = Field(description="received since subscribing")
    dropped: int = Field(description="lost because the buffer was full since subscribing")
    active: bool = Field(description="false once the subscription or link has ended")
    ended: str | None = Field(None, description="why the subscription ended")


class PluginOut(BaseModel):
    name: str
    origin: str
    hooks: list[str]


class BackendOut(BaseModel):
    name: str
    simulated: bool
    details: dict[str, str]


class StatusResult(BaseModel):
    version: str
    backend: BackendOut
    radio: str = Field(
        description="ready, or lost/recovering with the reason: while not ready every call "
        "fails at once with backend_unavailable"
    )
    simulated: bool
    plugins: list[PluginOut]
    connections: int
    subscriptions: int
    scans_run: int = Field(description="ble_scan requests served")
    radio_scans: int = Field(description="radio scans run; concurrent requests share one")
    tracked_devices: int
    uptime_s: float


# --------------------------------------------------------------------------- helpers


READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=True)
LINK = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)

CharacteristicArg = Annotated[
    str | int,
    Field(description="full UUID, 16-bit UUID like '2a19', or value handle as an integer or '#14'"),
]
AddressArg = Annotated[str, Field(description="device address as ble_scan lists it")]


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

    tools: list[Tool] = []

    def tool(annotations: ToolAnnotations) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            made = Tool.from_function(fn, annotations=annotations)
            schema = made.fn_metadata.output_schema
            if schema is not None:
                made.fn_metadata.output_schema = compact_schema(schema)
                made.fn = compact_text(fn)
            tools.append(made)
            return fn

        return register

    def simulated() -> bool:
        return app.radio.info().simulated

    @tool(READ_ONLY)
    @tool_errors
    async def ble_scan(
        ctx: Context,
        duration_s: Annotated[
            float | None, Field(description="seconds to listen; default from settings")
        ] = None,
        name: Annotated[str | None, Field(description="name contains (case-insensitive)")] = None,
        service_uuid: Annotated[
            str | None, Field(description="advertises this service, e.g. '180d'")
        ] = None,
        min_rssi: Annotated[int | None, Field(description="minimum RSSI in dBm, e.g. -80")] = None,
        manufacturer_id: Annotated[
            int | None, Field(description="Bluetooth SIG company id, e.g. 89 for Nordic")
        ] = None,
        limit: Annotated[
            int,
            Field(ge=1, le=1000, description="stop once this many matching devices are heard"),
        ] = 50,
    ) -> ScanResult:
        """Scan for advertising BLE devices; returns them strongest first, advertisement decoded
        (company names, SIG service names). Devices stay known for ble_devices and ble_connect."""
        scan_filter = ScanFilter(
            name=parse_name_filter(name),
            service_uuid=parse_uuid(service_uuid) if service_uuid else None,
            min_rssi=min_rssi,
            manufacturer_id=manufacturer_id,
        )
        if manufacturer_id is not None and not 0 <= manufacturer_id <= 0xFFFF:
            raise InvalidInput(
                f"manufacturer_id={shown_number(manufacturer_id)} is out of range",
                "company ids are 0..65535 (e.g. 76 for Apple, 89 for Nordic)",
            )
        task = asyncio.create_task(app.scan(duration_s, scan_filter, limit))
        # Seconds on the backend's clock; the total is known only when the caller fixed it
        # (plugins such as adaptive_scan choose the length otherwise).
        clock = app.radio.now
        started = clock()
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            if not task.done():
                elapsed = clock() - started
                with contextlib.suppress(Exception):
                    await ctx.report_progress(
                        min(elapsed, duration_s) if duration_s else elapsed,
                        duration_s,
                        f"scanning: {elapsed:.1f} s, {len(app.tracker)} devices known",
                    )
        outcome = task.result()
        now = app.now()
        return ScanResult(
            devices=[device_out(r, now) for r in outcome.devices],
            matched=outcome.matched,
            advertisements_heard=outcome.heard,
            duration_s=round(outcome.duration_s, 3),
            simulated=simulated(),
            notes=outcome.plan.notes,
        )

    @tool(READ_ONLY)
    @tool_errors
    async def ble_devices(
        limit: Annotated[int, Field(ge=1, le=10_000)] = 100,
    ) -> DevicesResult:
        """Devices heard recently (within server.recent_s), strongest first, without scanning."""
        now = app.now()
        return DevicesResult(
            devices=[device_out(r, now) for r in app.devices(limit)], simulated=simulated()
        )

    @tool(LINK)
    @tool_errors
    async def ble_connect(
        address: AddressArg,
        timeout_s: Annotated[
            float | None, Field(description="give up after this many seconds, retries included")
        ] = None,
    ) -> ConnectResult:
        """Connect to a device found by ble_scan. Connecting twice returns the existing link."""
        conn, new = await app.connect(address, timeout_s)
        return ConnectResult(
            address=conn.address,
            connected=True,
            already_connected=not new,
            mtu=conn.mtu,
            attempts=conn.attempts,
            notes=conn.notes if new else [],
        )

    @tool(LINK)
    @tool_errors
    async def ble_disconnect(address: AddressArg) -> DisconnectResult:
        """Disconnect; buffered notifications of its subscriptions stay readable until drained.
        A link another MCP session still uses stays up for it (this session's subscriptions on
        it end)."""
        was, others = await app.leave(address)
        return DisconnectResult(
            address=parse_address(address), was_connected=was, other_sessions=others
        )

    @tool(WRITE)
    @tool_errors
    async def ble_pair(
        address: AddressArg,
        preview: Annotated[Preview, Resolve(preview_pair)],
        approval: Annotated[ElicitationResult[WriteApproval], Resolve(ask_pair)],
    ) -> PairResult:
        """Pair (bond) with a connected device, for characteristics that need an encrypted or
        authenticated link (the error 'Insufficient Authentication' says when). Pairing counts
        as a write: under server.write_policy 'confirm' the person is asked first."""
        with approving(preview, approval):
            conn = await app.pair(address)
        return PairResult(address=conn.address, paired=True)

    @tool(READ_ONLY)
    @tool_errors
    async def ble_connections() -> ConnectionsResult:
        """Links that are up, with MTU, age, idle time and subscriptions."""
        now = time.time()
        mono = app.now()
        out = []
        for conn in app.connections.values():
            record = app.tracker.get(conn.address)
            subs = app.subscriptions_of(conn.address)
            mine = [s for s in subs if s.owner == current_owner()]
            out.append(
                ConnectionOut(
                    address=conn.address,
                    name=record.name if record else None,
                    mtu=conn.mtu,
                    connected_for_s=round(now - conn.connected_at, 3),
                    idle_s=round(mono - conn.last_used, 3),
                    subscriptions=[subscription_out(app, s) for s in mine],
                    other_sessions_subscriptions=sum(
                        s.active for s in subs if s.owner != current_owner()
                    ),
                )
            )
        return ConnectionsResult(connections=out)

    @tool(READ_ONLY)
    @tool_errors
    async def ble_services(
        address: AddressArg,
        refresh: Annotated[bool, Field(description="discover again instead of the cache")] = False,
        read_values: Annotated[
            bool,
            Field(description="also read every readable characteristic (one call, not many)"),
        ] = False,
    ) -> ServicesResult:
        """The GATT tree: services, characteristics (properties, handles), descriptors, with SIG
        names; with read_values, every readable characteristic's current value too (a failed
        read is reported on that characteristic, not as an error of the call)."""
        index = await app.gatt(address, refresh)
        values: dict[int, ValueOut] = {}
        errors: dict[int, str] = {}
        if read_values:
            for char in index.characteristics.values():
                if "read" in char.properties:
                    try:
                        done = await app.read(address, f"#{char.handle}")
                    except BleError as exc:
                        errors[char.handle] = str(exc)
                    else:
                        values[char.handle] = value_out(char.uuid, done.data)
        return ServicesResult(
            address=parse_address(address),
            services=[
                ServiceOut(
                    uuid=s.uuid,
                    short=short_uuid(s.uuid),
                    name=uuid_name(s.uuid),
                    handle=s.handle,
                    characteristics=[
                        CharacteristicOut(
                            uuid=c.uuid,
                            short=short_uuid(c.uuid),
                            name=uuid_name(c.uuid),
                            handle=c.handle,
                            properties=list(c.properties),
                            value=values.get(c.handle),
                            error=errors.get(c.handle),
                            descriptors=[
                                DescriptorOut(
                                    uuid=d.uuid,
                                    short=short_uuid(d.uuid),
                                    name=uuid_name(d.uuid),
                                    handle=d.handle,
                                )
                                for d in c.descriptors
                            ],
                        )
                        for c in s.characteristics
                    ],
                )
                for s in index.services
            ],
        )

    @tool(READ_ONLY)
    @tool_errors
    async def ble_read(address: AddressArg, characteristic: CharacteristicArg) -> ReadResult:
        """Read a characteristic: hex, text when printable, and decoded for well-known ones
        (battery %, heart rate bpm, temperature °C, ...)."""
        done = await app.read(address, characteristic)
        char, data = done.characteristic, done.data
        return ReadResult(
            address=done.address,
            uuid=char.uuid,
            name=uuid_name(char.uuid),
            handle=char.handle,
            hex=data.hex(),
            text=printable_text(data),
            decoded=decode(char.uuid, data),
        )

    @tool(WRITE)
    @tool_errors
    async def ble_write(
        address: AddressArg,
        characteristic: CharacteristicArg,
        value: Annotated[str, Field(description="the bytes to write, in the given encoding")],
        preview: Annotated[Preview, Resolve(preview_write)],
        approval: Annotated[ElicitationResult[WriteApproval], Resolve(ask_write)],
        encoding: Literal["hex", "utf8", "base64"] = "hex",
        response: Annotated[
            bool | Literal["auto"],
            Field(description="auto: with response when the characteristic allows it"),
        ] = "auto",
    ) -> WriteResult:
        """Write a characteristic value (up to 512 bytes with response; MTU-3 without). Under
        server.write_policy 'confirm' the person is asked first (MCP elicitation)."""
        data = parse_value(value, encoding)
        with approving(preview, approval):
            outcome = await app.write(address, characteristic, data, response)
        return WriteResult(
            address=outcome.address,
            characteristic=char_ref(outcome.characteristic),
            bytes_written=outcome.nbytes,
            with_response=outcome.response,
            chunks=outcome.chunks,
            notes=outcome.notes,
        )

    @tool(READ_ONLY)
    @tool_errors
    async def ble_read_descriptor(
        address: AddressArg,
        descriptor: Annotated[
            str | int, Field(description="descriptor UUID like '2902', or handle like '#15'")
        ],
        characteristic: Annotated[
            str | int | None, Field(description="the characteristic it belongs to, if ambiguous")
        ] = None,
    ) -> DescriptorReadResult:
        """Read a descriptor (e.g. 2902 Client Characteristic Configuration, 2901 description)."""
        done = await app.read_descriptor(address, descriptor, characteristic)
        desc, char, data = done.descriptor, done.characteristic, done.data
        return DescriptorReadResult(
            address=done.address,
            characteristic=char_ref(char),
            descriptor=DescriptorOut(
                uuid=desc.uuid,
                short=short_uuid(desc.uuid),
                name=uuid_name(desc.uuid),
                handle=desc.handle,
            ),
            value=value_out(desc.uuid, data),
        )

    @tool(WRITE)
    @tool_errors
    async def ble_write_descriptor(
        address: AddressArg,
        descriptor: Annotated[
            str | int, Field(description="descriptor UUID like '2902', or handle like '#15'")
        ],
        value: str,
        preview: Annotated[Preview, Resolve(preview_descriptor_write)],
        approval: Annotated[ElicitationResult[WriteApproval], Resolve(ask_descriptor_write)],
        encoding: Literal["hex", "utf8", "base64"] = "hex",
        characteristic: Annotated[
            str | int | None, Field(description="the characteristic it belongs to, if ambiguous")
        ] = None,
    ) -> DescriptorWriteResult:
        """Write a descriptor value (a CCCD too: that counts as a write); under
        server.write_policy 'confirm', after the person approves."""
        data = parse_value(value, encoding)
        with approving(preview, approval):
            done = await app.write_descriptor(address, descriptor, data, characteristic)
        desc, char = done.descriptor, done.characteristic
        return DescriptorWriteResult(
            address=done.address,
            characteristic=char_ref(char),
            descriptor=DescriptorOut(
                uuid=desc.uuid,
                short=short_uuid(desc.uuid),
                name=uuid_name(desc.uuid),
                handle=desc.handle,
            ),
            bytes_written=len(data),
        )

    @tool(LINK)
    @tool_errors
    async def ble_subscribe(
        address: AddressArg, characteristic: CharacteristicArg
    ) -> SubscribeResult:
        """Start buffering notifications/indications; drain them with ble_notifications."""
        sub, new = await app.subscribe(address, characteristic)
        char = sub.characteristic
        return SubscribeResult(
            address=sub.address,
            characteristic=char_ref(char),
            already_subscribed=not new,
            buffer_size=sub.items.maxlen or 0,
            notes=sub.notes,
            resource=resources.notification_uri(sub.address, sub.handle),
        )

    @tool(LINK)
    @tool_errors
    async def ble_unsubscribe(
        address: AddressArg, characteristic: CharacteristicArg
    ) -> UnsubscribeResult:
        """Stop notifications for a characteristic and discard what is still buffered."""
        sub = await app.unsubscribe(address, characteristic)
        char = sub.characteristic
        return UnsubscribeResult(
            address=sub.address,
            characteristic=char_ref(char),
            received=sub.received,
            dropped=sub.dropped,
            undelivered=len(sub.items),
        )

    @tool(READ_ONLY)
    @tool_errors
    async def ble_notifications(
        address: AddressArg,
        characteristic: CharacteristicArg,
        max_items: Annotated[int, Field(description="most notifications to return")] = 50,
        wait_s: Annotated[
            float, Field(description="if none are buffered, wait up to this long for one")
        ] = 2.0,
    ) -> NotificationsResult:
        """Drain buffered notifications (oldest first); reports how many were dropped."""
        sub, items = await app.notifications(address, characteristic, max_items, wait_s)
        return NotificationsResult(
            address=sub.address,
            characteristic=subscription_ref(app, sub),
            notifications=[
                NotificationOut(
                    time=datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"),
                    value=value_out(sub.uuid, data),
                )
                for t, data in items
            ],
            remaining=len(sub.items),
            received=sub.received,
            dropped=sub.dropped,
            active=sub.active,
            ended=sub.ended,
        )

    @tool(READ_ONLY)
    @tool_errors
    async def ble_status() -> StatusResult:
        """Backend (and whether it is simulated), loaded plugins with the hooks each implements,
        connection, subscription and scan counts."""
        info = app.radio.info()
        return StatusResult(
            version=__version__,
            backend=BackendOut(name=info.name, simulated=info.simulated, details=info.details),
            radio=app.radio.health.summary(),
            simulated=info.simulated,
            plugins=[
                PluginOut(name=name, origin=app.catalog.origins.get(name, ""), hooks=hooks)
                for name, hooks in app.plugin_hooks()
            ],
            connections=len(app.connections),
            subscriptions=sum(1 for s in app.subscriptions.values() if s.active),
            scans_run=app.scans_run,
            radio_scans=app.scanner.radio_scans,
            tracked_devices=len(app.tracker),
            uptime_s=round(time.time() - app.started_at, 3),
        )

    bus = InMemorySubscriptionBus()
    mcp = BleMCPServer(
        "mcp-ble",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        subscriptions=bus,
        tools=tools,
        token_verifier=token_verifier,
        auth=auth,
        middleware=[session_owner_middleware(app)],
    )
    resources.install(mcp, app, bus)

    @mcp.resource(
        "ble://metrics",
        name="metrics",
        description="Prometheus text exposition of the server's metrics",
        mime_type="text/plain; version=0.0.4",
    )
    async def metrics_resource() -> str:
        return metrics_text(app)

    return mcp


def compact_text(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Return the structured result with a compact JSON copy as its text content.

    The SDK's default text copy is indented JSON; agents read that text, and compact JSON is
    about a third smaller (tokens the agent pays for) with the same content."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = await fn(*args, **kwargs)
        if not isinstance(result, BaseModel) or isinstance(result, CallToolResult):
            return result  # errors are already complete results
        return CallToolResult(
            content=[TextContent(type="text", text=result.model_dump_json())],
            structured_content=result.model_dump(mode="json"),
        )

    return wrapper


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON schema without ``$ref`` indirection and with ``anyOf [X, null]`` written as
    ``"type": [X, "null"]``. Clients validate every result against the output schema; this form
    validates identically and measurably faster (see ``mcp_read_overhead_ratio`` in the bench)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node and node["$ref"].startswith("#/$defs/"):
            target = walk(defs[node["$ref"].removeprefix("#/$defs/")])
            return {**target, **{k: walk(v) for k, v in node.items() if k != "$ref"}}
        options = node.get("anyOf")
        if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
            other = walk(next(o for o in options if o != {"type": "null"}))
            if isinstance(other.get("type"), str):
                merged = {k: walk(v) for k, v in node.items() if k != "anyOf"}
                merged.update({k: v for k, v in other.items() if k != "type"})
                merged["type"] = [other["type"], "null"]
                return merged
        return {k: walk(v) for k, v in node.items() if k != "$defs"}

    return walk(schema)  # type: ignore[no-any-return]


def metrics_text(app: BleApp) -> str:
    """The app's metrics in Prometheus text format, sampled gauges refreshed first."""
    app.collect_metrics()
    return generate_latest(app.metrics_registry).decode()


def subscription_ref(app: BleApp, sub: Subscription) -> AttributeRef:
    return AttributeRef(
        uuid=sub.uuid, short=short_uuid(sub.uuid), name=uuid_name(sub.uuid), handle=sub.handle
    )


def subscription_out(app: BleApp, sub: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        characteristic=subscription_ref(app, sub),
        active=sub.active,
        buffered=len(sub.items),
        received=sub.received,
        dropped=sub.dropped,
    )


__all__ = ["build_server", "label", "metrics_text"]
