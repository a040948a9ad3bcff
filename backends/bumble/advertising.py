"""Advertising data (Core Specification Supplement, Part A) to and from our Advertisement.

Decoding works on the raw AD structures, so it does not depend on how a library models them; the
bumble backend and the test bed both use it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from mcp_ble.core.models import Advertisement
from mcp_ble.core.sig import BASE_SUFFIX

# AD types (Bluetooth Assigned Numbers, "Common Data Types").
FLAGS = 0x01
UUID16_INCOMPLETE, UUID16_COMPLETE = 0x02, 0x03
UUID32_INCOMPLETE, UUID32_COMPLETE = 0x04, 0x05
UUID128_INCOMPLETE, UUID128_COMPLETE = 0x06, 0x07
SHORT_NAME, COMPLETE_NAME = 0x08, 0x09
TX_POWER = 0x0A
SERVICE_DATA_16, SERVICE_DATA_32, SERVICE_DATA_128 = 0x16, 0x20, 0x21
MANUFACTURER_DATA = 0xFF

FLAG_LE_GENERAL_DISCOVERABLE = 0x02
FLAG_BR_EDR_NOT_SUPPORTED = 0x04


def ad_structures(raw: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) pairs; a truncated trailing structure is ignored, as scanners do."""
    i = 0
    while i < len(raw):
        length = raw[i]
        if length == 0 or i + 1 + length > len(raw):
            return
        yield raw[i + 1], raw[i + 2 : i + 1 + length]
        i += 1 + length


def uuid_from_le(data: bytes) -> str:
    """A 2-, 4- or 16-byte little-endian UUID as a full lowercase 128-bit string."""
    if len(data) in (2, 4):
        return f"{int.from_bytes(data, 'little'):08x}{BASE_SUFFIX}"
    hexed = data[::-1].hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def uuid_to_le(uuid: str) -> bytes:
    """The shortest little-endian form of a full UUID (2, 4 or 16 bytes)."""
    if uuid.endswith(BASE_SUFFIX):
        value = int(uuid[:8], 16)
        return value.to_bytes(2 if value <= 0xFFFF else 4, "little")
    return bytes.fromhex(uuid.replace("-", ""))[::-1]


def decode(address: str, rssi: int, raw: bytes, connectable: bool = True) -> Advertisement:
    """Our Advertisement from raw advertising (and scan response) bytes."""
    adv = Advertisement(address=address, rssi=rssi, connectable=connectable)
    uuids: list[str] = []
    short_name = None
    for ad_type, data in ad_structures(raw):
        if ad_type == COMPLETE_NAME:
            adv.name = data.decode("utf-8", "replace")
        elif ad_type == SHORT_NAME:
            short_name = data.decode("utf-8", "replace")
        elif ad_type == TX_POWER and data:
            adv.tx_power = struct.unpack("<b", data[:1])[0]
        elif ad_type in (UUID16_INCOMPLETE, UUID16_COMPLETE):
            uuids += [uuid_from_le(data[i : i + 2]) for i in range(0, len(data) - 1, 2)]
        elif ad_type in (UUID32_INCOMPLETE, UUID32_COMPLETE):
            uuids += [uuid_from_le(data[i : i + 4]) for i in range(0, len(data) - 3, 4)]
        elif ad_type in (UUID128_INCOMPLETE, UUID128_COMPLETE):
            uuids += [uuid_from_le(data[i : i + 16]) for i in range(0, len(data) - 15, 16)]
        elif ad_type == MANUFACTURER_DATA and len(data) >= 2:
            adv.manufacturer_data[int.from_bytes(data[:2], "little")] = bytes(data[2:])
        elif ad_type in (SERVICE_DATA_16, SERVICE_DATA_32, SERVICE_DATA_128):
            size = {SERVICE_DATA_16: 2, SERVICE_DATA_32: 4, SERVICE_DATA_128: 16}[ad_type]
            if len(data) >= size:
                adv.service_data[uuid_from_le(data[:size])] = bytes(data[size:])
    if adv.name is None:
        adv.name = short_name
    adv.service_uuids = tuple(dict.fromkeys(uuids))
    return adv


def encode(
    name: str | None = None,
    service_uuids: tuple[str, ...] | list[str] = (),
    manufacturer_data: dict[int, bytes] | None = None,
    service_data: dict[str, bytes] | None = None,
    tx_power: int | None = None,
    connectable: bool = True,
) -> bytes:
    """Advertising data bytes for these fields (what a peripheral puts on the air)."""
    flags = FLAG_BR_EDR_NOT_SUPPORTED | (FLAG_LE_GENERAL_DISCOVERABLE if connectable else 0)
    parts: list[tuple[int, bytes]] = [(FLAGS, bytes([flags]))]
    if name:
        parts.append((COMPLETE_NAME, name.encode()))
    if tx_power is not None:
        parts.append((TX_POWER, struct.pack("<b", tx_power)))
    by_size: dict[int, list[bytes]] = {2: [], 4: [], 16: []}
    for uuid in service_uuids:
        packed = uuid_to_le(uuid)
        by_size[len(packed)].append(packed)
    for size, ad_type in ((2, UUID16_COMPLETE), (4, UUID32_COMPLETE), (16, UUID128_COMPLETE)):
        if by_size[size]:
            parts.append((ad_type, b"".join(by_size[size])))
    for company, payload in (manufacturer_data or {}).items():
        parts.append((MANUFACTURER_DATA, company.to_bytes(2, "little") + payload))
    for uuid, payload in (service_data or {}).items():
        packed = uuid_to_le(uuid)
        ad_type = {2: SERVICE_DATA_16, 4: SERVICE_DATA_32, 16: SERVICE_DATA_128}[len(packed)]
        parts.append((ad_type, packed + payload))
    return b"".join(bytes([len(data) + 1, ad_type]) + data for ad_type, data in parts)
