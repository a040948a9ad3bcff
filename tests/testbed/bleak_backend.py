"""Test-only bleak backend classes that drive a bumble central on the test bed's LocalLink.

bleak 3 accepts custom backends (``BleakScanner(..., backend=...)``, ``BleakClient(...,
backend=...)``) and instantiates them itself, so the classes made by :func:`bleak_backends` carry
their central as a class attribute. With them the production bleak backend runs unchanged and every
call crosses real ATT. They behave like bleak's BlueZ backend where it matters to a caller:

- ``mtu_size`` is always 23, and ``max_write_without_response_size`` reads 20 until the MTU
  exchange, which finishes ``mtu_delay_s`` after ``connect`` returns;
- the disconnected callback fires for every disconnect, requested or not;
- ATT errors become ``BleakGATTProtocolError``, a lost link ``BleakError("Not connected")``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
)
from bleak.uuids import normalize_uuid_str
from bumble import att, core
from bumble.device import Device, Peer
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import TransportLostError

from mcp_ble.backends.bumble.advertising import decode, uuid_from_le

from .link import LinkTransport

PROPERTY_NAMES = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)


def _uuid(bumble_uuid: Any) -> str:
    return uuid_from_le(bumble_uuid.to_bytes(force_128=True))


class BumbleCentral:
    """One bumble central device on the link, shared by the scanner and client classes.

    With ``transport`` (``tcp-client:HOST:PORT``) the central is an HCI controller in another
    process instead. When that transport closes, the central behaves as BlueZ does when its
    adapter is unplugged: every link reports a disconnection, calls fail with bleak's "No
    Bluetooth adapters found." until the adapter is back, and it comes back on its own once the
    controller answers again."""

    def __init__(
        self,
        link: LocalLink | None,
        address: str = "F0:00:00:00:00:01",
        transport: str | None = None,
    ) -> None:
        self.link = link
        self.address = address
        self.transport_name = transport
        self.device: Any = None
        self.clients: set[BumbleBleakClient] = set()
        self._scanners = 0
        self._transport: Any = None
        self._reopen: asyncio.Task[None] | None = None

    async def start(self) -> BumbleCentral:
        if self.transport_name is None:
            assert self.link is not None
            transport: Any = LinkTransport(self.link, "bleak-central")
        else:
            transport = await open_transport(self.transport_name)
        device = Device.with_hci("bleak", Address(self.address), transport.source, transport.sink)
        await device.power_on()
        self._transport, self.device = transport, device
        if self.transport_name is not None:
            transport.source.terminated.add_done_callback(lambda _: self._lost(transport))
        return self

    def _lost(self, transport: Any) -> None:
        if transport is not self._transport:
            return
        self.device, self._scanners = None, 0
        for client in list(self.clients):
            client._on_disconnection(0x08)
        self._reopen = asyncio.get_running_loop().create_task(self._come_back())

    async def _come_back(self) -> None:
        """BlueZ adds the adapter again when the dongle is plugged back in."""
        with contextlib.suppress(Exception):
            await self._transport.close()
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(Exception):
                await self.start()
                return

    def require(self) -> Any:
        """The device, or bleak's error for a system without an adapter (BlueZ's manager)."""
        if self.device is None:
            raise BleakBluetoothNotAvailableError(
                "No Bluetooth adapters found.", BleakBluetoothNotAvailableReason.NO_BLUETOOTH
            )
        return self.device

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        if self.device is not None:
            await self.stop()
        transport, self._transport = self._transport, None
        if transport is not None and self.transport_name is not None:
            with contextlib.suppress(Exception):
                await transport.close()

    async def start_scanning(self) -> None:
        self.require()
        self._scanners += 1
        if self._scanners == 1:
            try:
                await self.device.start_scanning(active=True, filter_duplicates=False)
            except TransportLostError:
                self._scanners = 0
                self.device = None  # what BlueZ says once the adapter is gone
                self.require()
            except BaseException:
                self._scanners -= 1
                raise

    async def stop_scanning(self) -> None:
        self._scanners = max(0, self._scanners - 1)
        if self._scanners == 0 and self.device is not None and self.device.is_scanning:
            await self.device.stop_scanning()

    async def stop(self) -> None:
        for connection in list(self.device.connections.values()):
            with contextlib.suppress(Exception):
                await connection.disconnect()
        if self.device.is_scanning:
            await self.device.stop_scanning()


class BumbleBleakScanner(BaseBleakScanner):
    central: BumbleCentral

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        uuids = [normalize_uuid_str(u) for u in service_uuids] if service_uuids else None
        super().__init__(detection_callback, uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        self._device = self.central.require()
        self._device.on("advertisement", self._on_advertisement)
        await self.central.start_scanning()

    async def stop(self) -> None:
        self._device.remove_listener("advertisement", self._on_advertisement)
        await self.central.stop_scanning()

    def _on_advertisement(self, report: Any) -> None:
        address = report.address.to_string(False)
        adv = decode(address, report.rssi, bytes(report.data), report.is_connectable)
        data = AdvertisementData(
            local_name=adv.name,
            manufacturer_data=dict(adv.manufacturer_data),
            service_data=dict(adv.service_data),
            service_uuids=list(adv.service_uuids),
            tx_power=adv.tx_power,
            rssi=report.rssi,
            platform_data=(report,),
        )
        if not self.is_allowed_uuid(data.service_uuids):
            return
        device = self.create_or_update_device(address, address, adv.name, report.address, data)
        self.call_detection_callbacks(device, data)


class BumbleBleakClient(BaseBleakClient):
    central: BumbleCentral
    mtu_delay_s: float = 0.0

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._peer_address = (
            address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._connection: Any = None
        self._peer: Any = None
        self._mtu_exchanged = False
        self._mtu_task: asyncio.Task[None] | None = None
        self._subscribers: dict[int, Any] = {}

    # ------------------------------------------------------------------ connection

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    @property
    def mtu_size(self) -> int:
        return 23  # as bleak's BlueZ backend reports it

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._peer_address is None:
            raise BleakDeviceNotFoundError(self.address, f"Device {self.address} was not found")
        try:
            connection = await self.central.require().connect(
                self._peer_address, timeout=self._timeout
            )
        except core.TimeoutError:
            raise TimeoutError(f"connecting to {self.address} timed out") from None
        except core.ConnectionError as exc:
            raise BleakError(f"connection failed: {exc}") from None
        self._connection = connection
        self._peer = Peer(connection)
        self.central.clients.add(self)
        connection.on("disconnection", self._on_disconnection)
        try:
            if pair:
                await connection.pair()
            self.services = await self._discover()
        except BaseException:
            await self.disconnect()
            raise
        self._mtu_task = asyncio.get_running_loop().create_task(self._exchange_mtu())

    async def _exchange_mtu(self) -> None:
        """BlueZ finishes the MTU exchange on its own schedule; bleak reads 20 until then."""
        with contextlib.suppress(Exception):
            await asyncio.sleep(self.mtu_delay_s)
            await self._peer.request_mtu(517)
            self._mtu_exchanged = True

    def _payload_size(self) -> int:
        if not self._mtu_exchanged or self._connection is None:
            return 20
        return int(self._connection.att_mtu) - 3

    async def _discover(self) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        async with self._att():
            await self._peer.discover_services()
            for proxy in self._peer.services:
                await proxy.discover_characteristics()
                service = BleakGATTService(proxy, proxy.handle, _uuid(proxy.uuid))
                collection.add_service(service)
                for char_proxy in proxy.characteristics:
                    await char_proxy.discover_descriptors()
                    props = [n for bit, n in PROPERTY_NAMES if int(char_proxy.properties) & bit]
                    char = BleakGATTCharacteristic(
                        char_proxy,
                        char_proxy.handle,
                        _uuid(char_proxy.uuid),
                        props,  # type: ignore[arg-type]
                        self._payload_size,
                        service,
                    )
                    collection.add_characteristic(char)
                    for desc_proxy in char_proxy.descriptors:
                        collection.add_descriptor(
                            BleakGATTDescriptor(
                                desc_proxy, desc_proxy.handle, _uuid(desc_proxy.type), char
                            )
                        )
        return collection

    def _on_disconnection(self, reason: int) -> None:
        self.central.clients.discard(self)
        if self._connection is None:
            return
        self._connection = None
        if self._mtu_task is not None:
            self._mtu_task.cancel()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        with contextlib.suppress(Exception):
            await connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        if self._connection is None:
            raise BleakError("Not connected")
        await self._connection.pair()

    async def unpair(self) -> None:
        await self.disconnect()

    # ------------------------------------------------------------------ I/O

    @contextlib.asynccontextmanager
    async def _att(self) -> AsyncIterator[None]:
        if self._connection is None:
            raise BleakError("Not connected")
        try:
            yield
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from None
        except core.TimeoutError:
            raise TimeoutError("ATT request timed out") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise BleakError("Not connected") from None  # bumble cancels requests on disconnect

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        async with self._att():
            return bytearray(await self._peer.read_value(characteristic.handle))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        async with self._att():
            return bytearray(await self._peer.read_value(descriptor.handle))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        async with self._att():
            await self._peer.write_value(characteristic.handle, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        async with self._att():
            await self._peer.write_value(descriptor.handle, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        async with self._att():
            await self._peer.subscribe(characteristic.obj, deliver)
        self._subscribers[characteristic.handle] = deliver

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        deliver = self._subscribers.pop(characteristic.handle, None)
        async with self._att():
            await self._peer.gatt_client.unsubscribe(characteristic.obj, deliver, force=True)


def bleak_backends(
    central: BumbleCentral, mtu_delay_s: float = 0.05
) -> tuple[type[BumbleBleakScanner], type[BumbleBleakClient]]:
    """Scanner and client classes bound to ``central`` (bleak instantiates them itself)."""
    scanner = type("BumbleScanner", (BumbleBleakScanner,), {"central": central})
    client = type(
        "BumbleClient", (BumbleBleakClient,), {"central": central, "mtu_delay_s": mtu_delay_s}
    )
    return scanner, client
