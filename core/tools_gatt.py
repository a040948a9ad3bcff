"""GATT tools: ``ble_services``, ``ble_read``, ``ble_write``, ``ble_read_descriptor``,
``ble_write_descriptor``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from pydantic import Field

from .approval import (
    Preview,
    WriteApproval,
    approving,
    ask_descriptor_write,
    ask_write,
    preview_descriptor_write,
    preview_write,
)
from .errors import BleError
from .outputs import (
    DescriptorReadResult,
    DescriptorWriteResult,
    ReadResult,
    ServicesResult,
    Value,
    WriteResult,
    service_out,
    uuid_label,
    value_fields,
    value_out,
)
from .toolkit import READ_ONLY, WRITE, AddressArg, CharacteristicArg, app_of, tool
from .values import parse_value

DescriptorArg = Annotated[str | int, Field(description="UUID ('2902') or handle ('#15')")]
OwnerArg = Annotated[str | int | None, Field(description="its characteristic, if ambiguous")]
Encoding = Literal["hex", "utf8", "base64"]
TypedOrText = str | dict[str, Any]


def by_handle(ref: str | int | None) -> bool:
    """The caller named the attribute by handle (14 or '#14'), so the result names its UUID."""
    return isinstance(ref, int) or (isinstance(ref, str) and ref.strip().startswith("#"))


@tool(READ_ONLY)
async def ble_services(
    ctx: Context,
    address: AddressArg,
    refresh: Annotated[bool, Field(description="discover again, not from cache")] = False,
    read_values: Annotated[bool, Field(description="also read every readable value")] = False,
) -> ServicesResult:
    """The GATT tree (services, characteristics, properties, value handles, descriptors);
    read_values adds each readable value or read error."""
    app = app_of(ctx)
    index = await app.gatt(address, refresh)
    values: dict[int, Value] = {}
    errors: dict[int, str] = {}
    if read_values:
        for char in index.characteristics.values():
            if "read" in char.properties:
                try:
                    done = await app.read(address, f"#{char.handle}")
                except BleError as exc:
                    errors[char.handle] = str(exc)
                else:
                    values[char.handle] = value_out(char.uuid, done.data, app.codec)
    return ServicesResult(services=[service_out(s, values, errors) for s in index.services])


@tool(READ_ONLY)
async def ble_read(
    ctx: Context, address: AddressArg, characteristic: CharacteristicArg
) -> ReadResult:
    """Read a characteristic: hex, text if text, decoded fields named with their unit (e.g.
    battery_level_percent)."""
    app = app_of(ctx)
    done = await app.read(address, characteristic)
    uuid = done.characteristic.uuid
    return ReadResult(
        **value_fields(uuid, done.data, app.codec),
        uuid=uuid_label(uuid) if by_handle(characteristic) else None,
    )


@tool(WRITE)
async def ble_write(
    ctx: Context,
    address: AddressArg,
    characteristic: CharacteristicArg,
    value: TypedOrText,
    preview: Annotated[Preview, Resolve(preview_write)],
    approval: Annotated[ElicitationResult[WriteApproval], Resolve(ask_write)],
    encoding: Encoding = "hex",
    response: Annotated[
        bool | Literal["auto"],
        Field(description="auto: with response if the characteristic allows"),
    ] = "auto",
) -> WriteResult:
    """Write a characteristic: up to 512 bytes with response, MTU-3 without. value: text in
    encoding, or typed fields, e.g. {"value": 21.5}. May ask the person first
    (server.write_policy)."""
    app = app_of(ctx)
    data = await app.value_bytes(address, characteristic, value, encoding)
    with approving(preview, approval):
        outcome = await app.write(address, characteristic, data, response)
    return WriteResult(
        bytes=None if isinstance(value, dict) else outcome.nbytes,
        hex=data.hex() if isinstance(value, dict) else None,
        with_response=outcome.response,
        chunks=outcome.chunks if outcome.chunks > 1 else None,
        notes=outcome.notes or None,
    )


@tool(READ_ONLY)
async def ble_read_descriptor(
    ctx: Context,
    address: AddressArg,
    descriptor: DescriptorArg,
    characteristic: OwnerArg = None,
) -> DescriptorReadResult:
    """Read a descriptor, e.g. 2902 (notify config), 2901 (description)."""
    app = app_of(ctx)
    done = await app.read_descriptor(address, descriptor, characteristic)
    return DescriptorReadResult(
        **value_fields(done.descriptor.uuid, done.data, app.codec),
        handle=done.descriptor.handle,
        characteristic=None if characteristic is not None else uuid_label(done.characteristic.uuid),
    )


@tool(WRITE)
async def ble_write_descriptor(
    ctx: Context,
    address: AddressArg,
    descriptor: DescriptorArg,
    value: str,
    preview: Annotated[Preview, Resolve(preview_descriptor_write)],
    approval: Annotated[ElicitationResult[WriteApproval], Resolve(ask_descriptor_write)],
    encoding: Encoding = "hex",
    characteristic: OwnerArg = None,
) -> DescriptorWriteResult:
    """Write a descriptor (a CCCD too); may ask the person first, like ble_write."""
    data = parse_value(value, encoding)
    with approving(preview, approval):
        done = await app_of(ctx).write_descriptor(address, descriptor, data, characteristic)
    return DescriptorWriteResult(
        bytes=len(data),
        handle=done.descriptor.handle,
        characteristic=None if characteristic is not None else uuid_label(done.characteristic.uuid),
    )
