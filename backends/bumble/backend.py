"""The bumble backend: bumble's userspace host stack on any HCI controller.

No operating-system Bluetooth stack is involved: bumble speaks HCI to a USB dongle, a serial
controller, a TCP bridge or the Android emulator and runs L2CAP, ATT, GATT and SMP itself. The
transport string comes from settings; tests inject ``open_transport`` to put the controller on an
in-memory ``LocalLink`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_ble.core.backend import Backend, NotifyCallback, until_deadline
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleError,
    BleTimeout,
    ConnectionFailed,
    DeviceNotFound,
    GattError,
    NotConnected,
    NotPermitted,
    OperationInProgress,
    OutOfSlots,
    ValueTooLong,
)
from mcp_ble.core.models import (
    Advertisement,
    BackendInfo,
    GattCharacteristic,
    GattDescriptor,
    GattService,
    ScanFilter,
)

from .advertising import decode, uuid_from_le

log = logging.getLogger(__name__)

#: Advertisements buffered between the radio and the core during one scan; beyond this they drop.
SCAN_BUFFER = 4096
#: HCI errors that mean "no room for another link" (Core Vol 1, Part F).
OUT_OF_SLOTS_CODES = frozenset({0x07, 0x09, 0x0D})
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

TransportOpener = Callable[[str], Awaitable[Any]]


def transport_hint(transport: str) -> str:
    """What to check when a transport does not open, by its scheme."""
    scheme = transport.split(":", 1)[0]
    hints = {
        "usb": "plug in a Bluetooth USB dongle (usb:0 is the first one; `bumble-usb-probe` lists "
        "them). On Linux the kernel driver must let go of it: run as root or add a udev rule "
        "for the dongle, and unload btusb (`sudo modprobe -r btusb`); on Windows install the "
        "WinUSB driver for the dongle with Zadig",
        "pyusb": "same as usb: a dongle the kernel driver has released",
        "serial": "check the port and baud rate (serial:/dev/ttyUSB0,1000000) and that you may "
        "open the port (Linux: the dialout group)",
        "tcp-client": "check host and port, and that the HCI bridge is listening",
        "tcp-server": "check that the port is free and the controller connects to it",
        "hci-socket": "needs Linux, root (or CAP_NET_RAW) and the adapter released by BlueZ "
        "(`sudo hciconfig hci0 down`)",
        "vhci": "needs /dev/vhci (`sudo modprobe hci_vhci`) and root",
        "android-netsim": "start the Android emulator (it runs netsim) first",
        "android-emulator": "start the Android emulator first",
    }
    return hints.get(scheme, "see bumble's transport names: usb:0, serial:PORT,BAUD, tcp-client:")


def random_static_address() -> str:
    """A random static address (two top bits set), as the spec requires for one we make up."""
    raw = bytearray(os.urandom(6))
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


def describe_reason(code: int) -> str:
    """``remote user terminated connection (0x13)`` from an HCI error code."""
    from bumble.hci import HCI_Constant

    name = HCI_Constant.error_name(code)
    if name.startswith("0x"):
        return f"HCI error {name}"
    words = name.removeprefix("HCI_").removesuffix("_ERROR").replace("_", " ").lower()
    return f"{words} (0x{code:02X})"


def _uuid(bumble_uuid: Any) -> str:
    return uuid_from_le(bumble_uuid.to_bytes(force_128=True))


@dataclass
class _Link:
    connection: Any
    peer: Any
    closing: bool = False
    characteristics: dict[int, Any] = field(default_factory=dict)
    descriptors: dict[int, Any] = field(default_factory=dict)
    subscribed: dict[int, Callable[[bytes], None]] = field(default_factory=dict)


class BumbleBackend(Backend):
    """A central on one HCI controller, driven by bumble."""

    def __init__(
        self,
        transport: str,
        *,
        address: str | None = None,
        mtu: int = 517,
        start_timeout_s: float = 10.0,
        open_transport: TransportOpener | None = None,
    ) -> None:
        self.transport_name = transport
        self.address = address or random_static_address()
        self.requested_mtu = mtu
        self.start_timeout_s = start_timeout_s
        self._open_transport = open_transport
        self._transport: Any = None
        self._device: Any = None
        self._links: dict[str, _Link] = {}
        self._peer_addresses: dict[str, Any] = {}
        self._connect_lock = asyncio.Lock()
        self.dropped_advertisements = 0

    def info(self) -> BackendInfo:
        details = {"transport": self.transport_name, "address": self.address}
        if self.dropped_advertisements:
            details["dropped_advertisements"] = str(self.dropped_advertisements)
        return BackendInfo("bumble", simulated=False, details=details)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the HCI transport and power the controller on, within ``start_timeout_s``."""
        try:
            from bumble.device import Device
            from bumble.hci import Address
            from bumble.transport import open_transport
        except ImportError as exc:
            raise BackendUnavailable(
                f"The bumble backend needs the bumble package, which is not installed ({exc})",
                "install it with: pip install 'mcp-ble[bumble]'",
            ) from None
        opener = self._open_transport or open_transport
        try:
            async with asyncio.timeout(self.start_timeout_s):
                self._transport = await opener(self.transport_name)
                device = Device.with_hci(
                    "mcp-ble",
                    Address(self.address),
                    self._transport.source,
                    self._transport.sink,
                )
                await device.power_on()
        except TimeoutError:
            await self._close_transport()
            raise BackendUnavailable(
                f"The bumble backend cannot start: the HCI controller at "
                f"'{self.transport_name}' did not answer within "
                f"{self.start_timeout_s:g} s",
                transport_hint(self.transport_name),
            ) from None
        except Exception as exc:
            await self._close_transport()
            raise BackendUnavailable(
                f"The bumble backend cannot start: cannot use the HCI transport "
                f"'{self.transport_name}': "
                f"{type(exc).__name__}: {exc}",
                transport_hint(self.transport_name),
            ) from None
        self._device = device

    async def stop(self) -> None:
        for address in list(self._links):
            with contextlib.suppress(Exception):
                await self.disconnect(address)
        if self._device is not None and self._device.is_scanning:
            with contextlib.suppress(Exception):
                await self._device.stop_scanning()
        self._device = None
        await self._close_transport()

    async def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.close()

    @property
    def device(self) -> Any:
        if self._device is None:
            raise BackendUnavailable(
                "The bumble backend is not started", "this is a bug: start() was not awaited"
            )
        return self._device

    # ------------------------------------------------------------------ discovery

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        """Active scan; every advertising report is yielded (the core merges duplicates)."""
        device = self.device
        queue: asyncio.Queue[Advertisement] = asyncio.Queue(SCAN_BUFFER)

        def on_advertisement(report: Any) -> None:
            address = report.address.to_string(False)
            self._peer_addresses[address] = report.address
            adv = decode(
                address, max(-127, min(20, report.rssi)), bytes(report.data), report.is_connectable
            )
            try:
                queue.put_nowait(adv)
            except asyncio.QueueFull:
                self.dropped_advertisements += 1

        device.on("advertisement", on_advertisement)
        try:
            await device.start_scanning(active=True, filter_duplicates=False)
            async for adv in until_deadline(queue, duration_s):
                yield adv
        finally:
            device.remove_listener("advertisement", on_advertisement)
            if device.is_scanning:
                with contextlib.suppress(Exception):
                    await device.stop_scanning()

    # ------------------------------------------------------------------ connection

    async def connect(self, address: str, timeout_s: float) -> None:
        if address in self._links:
            return
        peer_address = self._peer_addresses.get(address)
        if peer_address is None:
            raise DeviceNotFound(
                f"The bumble backend has not heard {address} advertise since it started",
                "run ble_scan first so the controller learns the device's address type",
            )
        from bumble import core, hci
        from bumble.device import Peer

        async with self._connect_lock:  # an HCI controller initiates one LE link at a time
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            try:
                connection = await self.device.connect(peer_address, timeout=timeout_s)
            except asyncio.CancelledError:
                # The caller's deadline passed: tell the controller to stop initiating.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.device.cancel_connection(peer_address))
                raise
            except (core.TimeoutError, TimeoutError):
                raise BleTimeout(
                    f"Connecting to {address} timed out after {timeout_s:.1f} s",
                    "the device may be out of range or no longer advertising",
                ) from None
            except core.ConnectionError as exc:
                raise self._connect_error(address, exc.error_code) from None
            except hci.HCI_Error as exc:
                raise self._connect_error(address, exc.error_code) from None
            except core.InvalidStateError:
                raise OperationInProgress(
                    f"The controller is already connecting to another device than {address}",
                    "retry in a moment",
                ) from None
            link = _Link(connection, Peer(connection))
            connection.on(
                "disconnection", lambda reason: self._on_disconnection(address, link, reason)
            )
            self._links[address] = link
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                    await link.peer.request_mtu(self.requested_mtu)
            except asyncio.CancelledError:
                await asyncio.shield(self.disconnect(address))
                raise
            except TimeoutError:
                await self.disconnect(address)
                raise BleTimeout(
                    f"Connected to {address} but the MTU exchange did not finish within "
                    f"{timeout_s:.1f} s",
                    "the device may be busy; try again",
                ) from None
            except Exception as exc:
                await self.disconnect(address)
                raise self._gatt_error(exc, address, "MTU exchange") from None

    def _connect_error(self, address: str, code: int | None) -> BleError:
        reason = describe_reason(code) if code is not None else "unknown reason"
        if code in OUT_OF_SLOTS_CODES:
            return OutOfSlots(
                f"Connecting to {address} failed: {reason}",
                "the controller has no free connection slot; disconnect another device",
            )
        return ConnectionFailed(
            f"Connecting to {address} failed: {reason}",
            "retry; move closer to the device if it keeps failing",
        )

    def _on_disconnection(self, address: str, link: _Link, reason: int) -> None:
        if self._links.get(address) is link:
            del self._links[address]
        if not link.closing:
            self.on_disconnect(address, describe_reason(reason))

    async def disconnect(self, address: str) -> None:
        link = self._links.pop(address, None)
        if link is None:
            return
        link.closing = True
        from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR

        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await link.connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)

    def _linked(self, address: str) -> _Link:
        link = self._links.get(address)
        if link is None:
            raise NotConnected(f"{address} is not connected", "call ble_connect first")
        return link

    def mtu(self, address: str) -> int:
        return int(self._linked(address).connection.att_mtu)

    async def discover(self, address: str) -> list[GattService]:
        link = self._linked(address)
        peer = link.peer
        services: list[GattService] = []
        async with self._gatt(address, "service discovery"):
            await peer.discover_services()
            for proxy in peer.services:
                await proxy.discover_characteristics()
                service = GattService(_uuid(proxy.uuid), proxy.handle)
                for char in proxy.characteristics:
                    await char.discover_descriptors()
                    link.characteristics[char.handle] = char
                    descriptors = []
                    for desc in char.descriptors:
                        link.descriptors[desc.handle] = desc
                        descriptors.append(GattDescriptor(_uuid(desc.type), desc.handle))
                    props = tuple(n for bit, n in PROPERTY_NAMES if int(char.properties) & bit)
                    service.characteristics.append(
                        GattCharacteristic(
                            _uuid(char.uuid), char.handle, props, descriptors, service.uuid
                        )
                    )
                services.append(service)
        return services

    # ------------------------------------------------------------------ transfer

    @contextlib.asynccontextmanager
    async def _gatt(self, address: str, operation: str) -> AsyncIterator[None]:
        """Turn bumble's failures during one ATT procedure into our errors."""
        try:
            yield
        except BleError:
            raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled (a deadline): not a link problem
            # bumble cancels a pending ATT request when the link drops
            raise ConnectionFailed(
                f"The link to {address} dropped during the {operation}",
                "connect again with ble_connect",
            ) from None
        except Exception as exc:
            raise self._gatt_error(exc, address, operation) from None

    @staticmethod
    def _gatt_error(exc: BaseException, address: str, operation: str) -> BleError:
        from bumble import att, core

        if isinstance(exc, att.ATT_Error):
            return GattError(int(exc.error_code), operation)
        if isinstance(exc, core.TimeoutError | TimeoutError):
            return BleTimeout(
                f"{address} did not answer the {operation} within the ATT timeout",
                "the device may be busy or out of range",
            )
        return ConnectionFailed(
            f"The {operation} on {address} failed: {type(exc).__name__}: {exc}",
            "retry; reconnect if it keeps failing",
        )

    def _characteristic(self, address: str, handle: int) -> tuple[_Link, Any]:
        link = self._linked(address)
        char = link.characteristics.get(handle)
        if char is None:
            raise GattError(0x01, "request", "list the GATT tree again (discover)")
        return link, char

    async def read(self, address: str, handle: int) -> bytes:
        link = self._linked(address)
        async with self._gatt(address, "read"):
            return bytes(await link.peer.read_value(handle))

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        link = self._linked(address)
        payload = link.connection.att_mtu - 3
        if not response and len(data) > payload:
            raise ValueTooLong(
                f"{len(data)} bytes do not fit one write without response (at most {payload})",
                "use a write with response for long values",
            )
        async with self._gatt(address, "write"):
            await link.peer.write_value(handle, bytes(data), with_response=response)

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        link = self._linked(address)
        async with self._gatt(address, "descriptor read"):
            return bytes(await link.peer.read_value(handle))

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        link = self._linked(address)
        async with self._gatt(address, "descriptor write"):
            await link.peer.write_value(handle, bytes(data), with_response=True)

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        """bumble calls ``callback`` on the loop, synchronously, for each notification."""
        link, char = self._characteristic(address, handle)
        if not int(char.properties) & 0x30:
            raise NotPermitted(
                f"Characteristic handle {handle} on {address} neither notifies nor indicates",
                "read it instead",
            )
        async with self._gatt(address, "subscription"):
            old = link.subscribed.pop(handle, None)
            if old is not None:
                await link.peer.unsubscribe(char, old)
            await link.peer.subscribe(char, callback, prefer_notify=True)
        link.subscribed[handle] = callback

    async def stop_notify(self, address: str, handle: int) -> None:
        link, char = self._characteristic(address, handle)
        callback = link.subscribed.pop(handle, None)
        async with self._gatt(address, "unsubscription"):
            await link.peer.gatt_client.unsubscribe(char, callback, force=True)

    async def pair(self, address: str) -> None:
        """Pair through bumble's SMP (Just Works unless the device asks for more)."""
        link = self._linked(address)
        try:
            await link.connection.pair()
        except Exception as exc:
            raise NotPermitted(
                f"Pairing with {address} failed: {type(exc).__name__}: {exc}",
                "the device may require a passkey, which the bumble backend cannot enter",
            ) from None
