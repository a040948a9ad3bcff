"""What the tools return: lean result models, the builders that fill them, and their schemas.

Every character of a result is paid for by the agent in tokens, so a result says only what the
call's arguments do not already say, and leaves out what is empty: a field that is absent means
"none" (no name, no notes, nothing dropped), never "unknown". Optional fields are ``None`` in
Python and omitted on the wire; the output schemas list them as optional (not as nullable).

A value (``ble_read``, a notification, a descriptor, ``read_values``) is one flat object: ``hex``
(the raw bytes), ``text`` when the bytes are text, and the fields the decoder plugins give it
(``mcp_ble_decode_value``; the ``sig`` plugin's names carry their unit: ``battery_level_percent``,
``heart_rate_bpm``, ``temperature_c``). A value that decodes to numbers has no text copy (battery
0x57 is 87 %, not "W"), and a string value that is exactly its text has no hex copy (one a
decoder calls text, or an unknown one whose bytes are four or more printable characters).
Without a decoder every value is hex, and text when it is text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .decoding import NO_DECODERS, Codec
from .models import GattCharacteristic, GattService
from .sig import company_name, printable_text, short_uuid
from .tracker import DeviceRecord


class Lean(BaseModel):
    """A result model; ``dump`` leaves out every field that is ``None``."""

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def uuid_label(uuid: str) -> str:
    """How results name a UUID: the 16-bit form for SIG UUIDs ('180d'), else the full UUID.
    Either form is accepted back as an argument."""
    return short_uuid(uuid) or uuid


def named(uuid: str, codec: Codec = NO_DECODERS) -> str:
    """'180d Heart Rate': the UUID as results name it, then its name when it has one."""
    name = codec.name(uuid)
    return f"{uuid_label(uuid)} {name}" if name else uuid_label(uuid)


def company_label(company_id: int) -> str:
    """'89 Nordic Semiconductor ASA': the company id as ble_scan(manufacturer_id=) takes it,
    then its name from the Bluetooth SIG's list when known."""
    name = company_name(company_id)
    return f"{company_id} {name}" if name else str(company_id)


# --------------------------------------------------------------------------- values


class Value(Lean):
    """The raw bytes, their text, and the decoded fields of well-known characteristics (extra
    keys such as ``battery_level_percent``)."""

    model_config = ConfigDict(extra="allow")

    hex: str | None = Field(None, description="the bytes; absent when text holds them exactly")
    text: str | None = None


#: Fields of the results a value is shown in (ReadResult, NotificationOut, ...), which decoded
#: fields of the same name must not replace.
RESERVED = frozenset({"hex", "uuid", "ms", "handle", "characteristic"})


def value_fields(uuid: str, data: bytes, codec: Codec = NO_DECODERS) -> dict[str, Any]:
    """The flat fields of a value (see the module docstring)."""
    decoded = codec.decode(uuid, data)
    fields: dict[str, Any] = {}
    text: str | None = None
    is_text = False
    if decoded is not None:
        # a decoded field never takes the place of a field the result itself has
        decoded = {f"value_{k}" if k in RESERVED else k: v for k, v in decoded.items()}
        text = decoded.pop("text", None)
        is_text = isinstance(text, str)  # a string by its definition
    elif len(data) >= 2:
        # An unknown characteristic: one byte is as likely a number as a letter, so text is
        # shown from two printable characters on, and the bytes stay beside a short text.
        text = printable_text(data)
        is_text = text is not None and len(text) >= 4
    if text is None or text.encode() != data or not is_text:
        fields["hex"] = data.hex()
    if text is not None:
        fields["text"] = text
    fields.update({k: v for k, v in (decoded or {}).items() if v is not None})
    return fields


def value_out(uuid: str, data: bytes, codec: Codec = NO_DECODERS) -> Value:
    return Value(**value_fields(uuid, data, codec))


# --------------------------------------------------------------------------- discovery


class DeviceOut(Lean):
    address: str
    name: str | None = None
    rssi: int = Field(description="dBm")
    tx_power: int | None = None
    connectable: bool | None = Field(None, description="false: does not accept connections")
    seen_s_ago: float | None = None
    services: list[str] | None = Field(None, description="'180d Heart Rate': UUID, then name")
    manufacturer_data: dict[str, str] | None = Field(
        None, description="'89 Nordic Semiconductor ASA': hex (company id, then name)"
    )
    service_data: dict[str, str] | None = Field(None, description="service UUID: hex")
    radio: str | None = None
    #: Reading name -> "value unit" (core/readings.py); a plain object in the schema, which
    #: costs every tools/list a third of what typed values would.
    readings: dict[str, Any] | None = Field(None, description="decoded from advertisements")


def device_out(
    record: DeviceRecord,
    now: float | None = None,
    readings: dict[str, str] | None = None,
    codec: Codec = NO_DECODERS,
    read: Mapping[str | int, bytes] | None = None,
) -> DeviceOut:
    """A device as results show it; ``now`` (``BleApp.now()``, the backend's clock) adds how
    long ago it was heard; ``readings`` are its latest sensor readings (core/readings.py);
    ``codec`` (``BleApp.codec``) names its services. ``read`` (``SensorStore.read``) holds the
    payload entries decoders turned into readings with the bytes read: an entry still holding
    those bytes is left out, the readings standing for it."""
    read = read or {}
    return DeviceOut(
        address=record.address,
        name=record.name or None,
        rssi=record.rssi,
        tx_power=record.tx_power,
        connectable=None if record.connectable else False,
        seen_s_ago=None if now is None else round(max(0.0, now - record.last_seen), 1),
        services=[named(u, codec) for u in record.service_uuids] or None,
        manufacturer_data={
            company_label(cid): data.hex()
            for cid, data in record.manufacturer_data.items()
            if read.get(cid) != data
        }
        or None,
        service_data={
            uuid_label(u): data.hex()
            for u, data in record.service_data.items()
            if read.get(u) != data
        }
        or None,
        radio=record.radio,
        readings=readings,
    )


class ScanResult(Lean):
    devices: list[DeviceOut] = Field(description="strongest first")
    matched: int | None = Field(None, description="devices matching, when more than listed")
    duration_s: float
    simulated: bool | None = Field(None, description="true: virtual devices, not hardware")
    notes: list[str] | None = Field(None, description="what plugins changed, and why")


class DevicesResult(Lean):
    devices: list[DeviceOut]
    simulated: bool | None = None


class SensorOut(Lean):
    address: str
    name: str | None = None
    readings: dict[str, Any]
    s_ago: float = Field(description="when its newest reading was heard")


class SensorsResult(Lean):
    sensors: list[SensorOut] = Field(description="most recently heard first")
    listened_s: float | None = Field(None, description="listened this long: nothing was known")


# --------------------------------------------------------------------------- links


class ConnectResult(Lean):
    mtu: int = Field(description="ATT MTU; a write without response carries mtu-3 bytes")
    mtu_by: str | None = Field(None, description="asked: mtu plugin's choice; os: OS chose")
    already_connected: bool | None = None
    attempts: int | None = Field(None, description="when more than one was needed")
    notes: list[str] | None = None
    radio: str | None = None


class PairResult(Lean):
    paired: bool


class DisconnectResult(Lean):
    was_connected: bool
    other_sessions: int | None = Field(
        None, description="other MCP sessions still using the link: it stays up for them"
    )


class SubscriptionOut(Lean):
    characteristic: str
    handle: int
    buffered: int
    received: int
    dropped: int | None = None
    ended: str | None = None


class ConnectionOut(Lean):
    address: str
    name: str | None = None
    mtu: int
    mtu_by: str | None = None
    connected_for_s: float
    idle_s: float
    radio: str | None = None
    subscriptions: list[SubscriptionOut] | None = Field(
        None, description="this MCP session's subscriptions"
    )
    other_sessions_subscriptions: int | None = Field(
        None, description="active subscriptions other MCP sessions hold on this link"
    )


class ConnectionsResult(Lean):
    connections: list[ConnectionOut]


class PluginOut(Lean):
    name: str
    hooks: list[str]
    origin: str | None = Field(None, description="where a plugin not built in comes from")


class BackendOut(Lean):
    name: str
    details: dict[str, str] | None = None


class StatusResult(Lean):
    version: str
    backend: BackendOut
    radio: str = Field(description="ready, or lost/recovering and why (calls then fail at once)")
    simulated: bool
    plugins: list[PluginOut]
    connections: int
    subscriptions: int
    scans_run: int
    radio_scans: int = Field(description="concurrent ble_scan requests share one")
    tracked_devices: int
    uptime_s: float
    radios: dict[str, str] | None = None


# --------------------------------------------------------------------------- GATT


class CharacteristicOut(Lean):
    uuid: str
    name: str | None = None
    handle: int = Field(description="value handle: characteristic='#<handle>'")
    properties: list[str]
    descriptors: list[str] | None = None
    value: Value | None = None
    error: str | None = Field(None, description="why reading it failed")


class ServiceOut(Lean):
    uuid: str
    name: str | None = None
    characteristics: list[CharacteristicOut]


class ServicesResult(Lean):
    services: list[ServiceOut]


def service_out(
    service: GattService, values: dict[int, Value], errors: dict[int, str]
) -> ServiceOut:
    return ServiceOut(
        uuid=uuid_label(service.uuid),
        name=service.name,
        characteristics=[characteristic_out(c, values, errors) for c in service.characteristics],
    )


def characteristic_out(
    char: GattCharacteristic, values: dict[int, Value], errors: dict[int, str]
) -> CharacteristicOut:
    return CharacteristicOut(
        uuid=uuid_label(char.uuid),
        name=char.name,
        handle=char.handle,
        properties=list(char.properties),
        descriptors=[uuid_label(d.uuid) for d in char.descriptors] or None,
        value=values.get(char.handle),
        error=errors.get(char.handle),
    )


class ReadResult(Value):
    """The value, flat; plus the characteristic's UUID when it was named by handle."""

    uuid: str | None = None


class WriteResult(Lean):
    #: The bytes written: ``hex`` when a typed value was (what it became), else their count.
    bytes: int | None = None
    hex: str | None = None
    with_response: bool
    chunks: int | None = Field(None, description="writes it took, when more than one")
    notes: list[str] | None = None


class DescriptorReadResult(Value):
    """The value, flat; plus the descriptor's handle and, when the call did not name it, the
    characteristic it belongs to."""

    handle: int
    characteristic: str | None = None


class DescriptorWriteResult(Lean):
    bytes: int
    handle: int
    characteristic: str | None = None


# --------------------------------------------------------------------------- notifications


class SubscribeResult(Lean):
    resource: str = Field(description="subscribe to it to be told when values arrive")
    buffer_size: int = Field(description="notifications kept; older ones are dropped")
    already_subscribed: bool | None = None
    notes: list[str] | None = None


class UnsubscribeResult(Lean):
    received: int
    dropped: int | None = None
    undelivered: int | None = Field(None, description="buffered ones discarded")


class NotificationOut(Lean):
    """One notification: when it arrived, then its value, flat (like ``Value``)."""

    model_config = ConfigDict(extra="allow")

    ms: int = Field(description="arrival, milliseconds after start")
    hex: str | None = None
    text: str | None = None


class NotificationsResult(Lean):
    start: str | None = Field(None, description="arrival of the first, ISO 8601 UTC")
    notifications: list[NotificationOut]
    remaining: int | None = Field(None, description="still buffered")
    received: int = Field(description="since subscribing")
    dropped: int | None = Field(None, description="lost to a full buffer")
    ended: str | None = Field(None, description="why the subscription ended")


# --------------------------------------------------------------------------- schemas


def lean_schema(schema: dict[str, Any], output: bool = False) -> dict[str, Any]:
    """A JSON schema as clients should get it: no ``$ref``/``$defs`` indirection, no ``title``,
    optional fields written as optional rather than as ``anyOf [X, null]`` (our results omit
    them instead of sending null), and no ``type`` arrays: every node has one ``type`` or an
    ``anyOf`` of single-typed branches, the portable spelling. An ``output`` schema also drops
    descriptions and defaults: the tool's description and the field names say what a result
    holds, and a default never appears in a result."""
    defs = schema.get("$defs", {})

    def walk(node: Any, nested: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(item, nested) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node and str(node["$ref"]).startswith("#/$defs/"):
            target = walk(defs[node["$ref"].removeprefix("#/$defs/")], nested)
            return {**target, **{k: walk(v, nested) for k, v in node.items() if k != "$ref"}}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if output and key == "required" and nested:
                continue  # only the result object's own fields are listed as required
            if key in ("$defs", "title"):
                continue
            if key == "default" and (value is None or output):
                continue
            if output and key == "description" and isinstance(value, str):
                continue
            if key == "additionalProperties" and value is True:
                continue  # the JSON Schema default
            if key == "properties":
                out[key] = {name: walk(sub, True) for name, sub in value.items()}
            else:
                out[key] = walk(value, True)
        options = out.get("anyOf")
        if isinstance(options, list):
            rest = [o for o in options if o != {"type": "null"}]
            if len(rest) == 1:
                del out["anyOf"]
                out = {**rest[0], **out}
            else:
                out["anyOf"] = rest
        return out

    return walk(schema)  # type: ignore[no-any-return]
