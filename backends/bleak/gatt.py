"""GATT over links that hold a bleak client: shared by the bleak backend and the esphome backend
(bleak-esphome's client is a bleak client backend, with the same calls and the same service
collection).

A link indexes the characteristics and descriptors of its client's service collection by handle
when the GATT tree is listed, or at the first call naming a handle before that. Library errors
of a call go through the backend's own ``_failed``, which maps them to the core's errors.
Imports nothing beyond the core: the esphome backend's own imports stay lazy.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mcp_ble.core.errors import BleError, GattError, NotConnected, NotPermitted
from mcp_ble.core.models import GattCharacteristic, GattDescriptor, GattService


@dataclass
class GattLink:
    """One connection: its client and the client's characteristics and descriptors by handle."""

    client: Any
    characteristics: dict[int, Any] = field(default_factory=dict)
    descriptors: dict[int, Any] = field(default_factory=dict)

    def tree(self, collection: Any) -> list[GattService]:
        """The core's GATT tree of a bleak service collection, indexing its handles."""
        services = []
        for bleak_service in collection:
            service = GattService(bleak_service.uuid, bleak_service.handle)
            for char in bleak_service.characteristics:
                self.characteristics[char.handle] = char
                descriptors = []
                for desc in char.descriptors:
                    self.descriptors[desc.handle] = desc
                    descriptors.append(GattDescriptor(desc.uuid, desc.handle))
                service.characteristics.append(
                    GattCharacteristic(
                        char.uuid, char.handle, tuple(char.properties), descriptors, service.uuid
                    )
                )
            services.append(service)
        return services

    def index(self) -> None:
        """Index the handles of the client's service collection without listing it."""
        for char in self.client.services.characteristics.values():
            self.characteristics[char.handle] = char
        for desc in self.client.services.descriptors.values():
            self.descriptors[desc.handle] = desc


L = TypeVar("L", bound=GattLink)


class BleakGatt(Generic[L]):
    """The link bookkeeping and GATT transfers of a backend whose links are ``L``s, kept in
    ``_links`` by address. The backend maps library errors with ``_failed``."""

    _links: dict[str, L]

    @abstractmethod
    def _failed(self, exc: BaseException, address: str, operation: str) -> BleError:
        """The error to raise for ``exc``, raised by ``operation`` on ``address``."""

    def is_connected(self, address: str) -> bool:
        link = self._links.get(address)
        return link is not None and bool(link.client.is_connected)

    async def disconnect(self, address: str) -> None:
        link = self._links.pop(address, None)
        if link is None:
            return
        try:
            async with asyncio.timeout(10):
                await link.client.disconnect()
        except Exception as exc:
            logging.getLogger(type(self).__module__).info("disconnecting %s: %s", address, exc)

    def _linked(self, address: str) -> L:
        link = self._links.get(address)
        if link is None:
            raise NotConnected(f"{address} is not connected", "call ble_connect first")
        return link

    def _char(self, address: str, handle: int) -> tuple[L, Any]:
        link = self._linked(address)
        if not link.characteristics:
            link.index()
        char = link.characteristics.get(handle)
        if char is None:
            raise GattError(0x01, "request", "list the GATT tree again (ble_services)")
        return link, char

    def _desc(self, address: str, handle: int) -> tuple[L, Any]:
        link = self._linked(address)
        if not link.descriptors:
            link.index()
        desc = link.descriptors.get(handle)
        if desc is None:
            raise GattError(0x01, "descriptor request", "list the GATT tree again")
        return link, desc

    def _notifiable(self, address: str, handle: int) -> tuple[L, Any]:
        """The link and characteristic at ``handle``, which must notify or indicate."""
        link, char = self._char(address, handle)
        if "notify" not in char.properties and "indicate" not in char.properties:
            raise NotPermitted(
                f"Characteristic handle {handle} on {address} neither notifies nor indicates",
                "read it instead",
            )
        return link, char

    async def read(self, address: str, handle: int) -> bytes:
        link, char = self._char(address, handle)
        try:
            return bytes(await link.client.read_gatt_char(char))
        except Exception as exc:
            raise self._failed(exc, address, "read") from None

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        link, char = self._char(address, handle)
        try:
            await link.client.write_gatt_char(char, data, response=response)
        except Exception as exc:
            raise self._failed(exc, address, "write") from None

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        link, desc = self._desc(address, handle)
        try:
            return bytes(await link.client.read_gatt_descriptor(desc))
        except Exception as exc:
            raise self._failed(exc, address, "descriptor read") from None

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        link, desc = self._desc(address, handle)
        await self._write_descriptor(address, link, desc, data)

    async def _write_descriptor(self, address: str, link: L, desc: Any, data: bytes) -> None:
        try:
            await link.client.write_gatt_descriptor(desc, data)
        except Exception as exc:
            raise self._failed(exc, address, "descriptor write") from None
