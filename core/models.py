"""Plain data the core and backends exchange.

Pydantic models live only at the edges (MCP, settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class Advertisement:
    """One advertising report as a backend hears it.

    ``service_uuids`` and the keys of ``service_data`` are full lowercase 128-bit UUID strings;
    ``manufacturer_data`` maps the 16-bit company id to the payload after the id.
    """

    address: str
    rssi: int
    name: str | None = None
    tx_power: int | None = None
    connectable: bool = True
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    #: The radio that heard it, when several serve (core/fleet.py sets it); "" with one.
    radio: str = ""


@dataclass(frozen=True, slots=True)
class SensorReading:
    """One value a device broadcasts in its advertisements, as a decoder plugin reads it.

    ``measurement`` is lower snake case and uses sensor-state-data's device class names where one
    fits ("temperature", "humidity", "battery", "pressure", "illuminance", "carbon_dioxide",
    "moisture", "conductivity", "voltage", ...). ``unit`` is its symbol ("°C", "%", "hPa", "lx",
    "ppm") or ``None`` for counts, flags and text. ``source`` names the format ("bthome", "xiaomi",
    "ibeacon", ...). ``key`` tells apart two readings of one measurement on one device (two
    temperature probes: "temperature_probe_1", "temperature_probe_2"); it equals
    ``measurement`` when the device has one of them. ``payload`` names the advertisement entry
    the value was read from: a service-data UUID (as the advertisement's keys) or a company id
    of manufacturer data. Device lists then leave that entry's hex out, the readings standing
    for it; ``None`` (the decoder does not say, or the reading is not a value of the payload,
    such as an encryption state) keeps the entry shown.
    """

    measurement: str
    value: float | int | str | bool
    unit: str | None
    source: str
    key: str = ""
    payload: str | int | None = None

    @property
    def ident(self) -> str:
        """What names this reading on its device: ``key``, or ``measurement`` without one."""
        return self.key or self.measurement


class Advertised(Protocol):
    """What a scan filter looks at: an Advertisement, or the tracker's merged DeviceRecord."""

    address: str
    name: str | None
    rssi: int
    service_uuids: tuple[str, ...]
    manufacturer_data: dict[int, bytes]
    service_data: dict[str, bytes]


@dataclass(slots=True)
class ScanFilter:
    """What a caller wants from a scan. Backends may use it to filter in the radio/OS;
    the core applies it again to every advertisement, so a backend may also ignore it."""

    name: str | None = None
    service_uuid: str | None = None
    min_rssi: int | None = None
    manufacturer_id: int | None = None
    #: One device only, in the backend's address form (connecting to an address not yet heard).
    address: str | None = None

    def matches(self, adv: Advertised) -> bool:
        if self.address is not None and adv.address != self.address:
            return False
        if self.min_rssi is not None and adv.rssi < self.min_rssi:
            return False
        if self.name is not None and (
            adv.name is None or self.name.casefold() not in adv.name.casefold()
        ):
            return False
        if self.service_uuid is not None and not (
            self.service_uuid in adv.service_uuids or self.service_uuid in adv.service_data
        ):
            return False
        return self.manufacturer_id is None or self.manufacturer_id in adv.manufacturer_data


@dataclass(slots=True)
class GattDescriptor:
    uuid: str
    handle: int
    #: The UUID's name from the decoder plugins, set when the GATT tree is indexed.
    name: str | None = None


@dataclass(slots=True)
class GattCharacteristic:
    """``handle`` is the handle the backend uses for reads and writes of the value.
    ``properties`` uses bleak's names: read, write, write-without-response, notify, indicate, ..."""

    uuid: str
    handle: int
    properties: tuple[str, ...]
    descriptors: list[GattDescriptor] = field(default_factory=list)
    service_uuid: str = ""
    name: str | None = None
    #: Its User Description (2901) as last read on this link, telling apart characteristics
    #: of one UUID (an ambiguous_attribute error shows it).
    description: str | None = None


@dataclass(slots=True)
class GattService:
    uuid: str
    handle: int
    characteristics: list[GattCharacteristic] = field(default_factory=list)
    name: str | None = None


def copy_services(services: list[GattService]) -> list[GattService]:
    """A copy of a GATT tree that callers may annotate without touching the backend's own."""
    return [
        GattService(
            s.uuid,
            s.handle,
            [
                GattCharacteristic(
                    c.uuid,
                    c.handle,
                    c.properties,
                    [GattDescriptor(d.uuid, d.handle) for d in c.descriptors],
                    c.service_uuid,
                )
                for c in s.characteristics
            ],
        )
        for s in services
    ]


@dataclass(slots=True)
class BackendInfo:
    """What a backend says about itself for ``ble_status`` and ``mcp-ble doctor``."""

    name: str
    simulated: bool = False
    details: dict[str, str] = field(default_factory=dict)
