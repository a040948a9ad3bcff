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

from mcp_ble.core.backend import Backend, LinkInfo, NotifyCallback, until_deadline
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
from .errors import connect_error, describe_reason, gatt_error, transport_hint

log = logging.getLogger(__name__)

#: Advertisements buffered between the radio and the core during one scan; beyond this they drop.
SCAN_BUFFER = 4096
#: The ATT transaction timeout (Core spec Vol 3, Part F, 3.3.3).
ATT_TRANSACTION_TIMEOUT_S = 30.0
#: How long a connect cancelled at its deadline may go on cleaning up in the background.
CANCEL_CLEANUP_S = 10.0
#: How long the end of a scan waits for the controller to confirm it stopped scanning.
STOP_GRACE_S = 0.3
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


def random_static_address() -> str:
    """A random static address (two top bits set), as the spec requires for one we make up."""
    raw = bytearray(os.urandom(6))
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


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

    requests_mtu = True

    def __init__(
        self,
        transport: str,
        *,
        address: str | None = None,
        mtu: int = 517,
        start_timeout_s: float = 10.0,
        att_timeout_s: float = ATT_TRANSACTION_TIMEOUT_S,
        open_transport: TransportOpener | None = None,
    ) -> None:
        self.transport_name = transport
        self.address = address or random_static_address()
        self.requested_mtu = mtu
        self.start_timeout_s = start_timeout_s
        self.att_timeout_s = att_timeout_s
        self._open_transport = open_transport
        self._transport: Any = None
        self._device: Any = None
        self._links: dict[str, _Link] = {}
        self._peer_addresses: dict[str, Any] = {}
        self._connect_lock = asyncio.Lock()
        self.dropped_advertisements = 0
        #: Queues of the scans under way: a lost transport ends them with a ``None``.
        self._scan_queues: set[asyncio.Queue[Advertisement | None]] = set()
        #: Connect attempts being cancelled after their deadline, finishing in the background.
        self._cancelling: set[asyncio.Future[Any]] = set()
        #: Scan stops the controller has not confirmed yet.
        self._stopping: set[asyncio.Future[Any]] = set()

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
        except asyncio.CancelledError:
            await self._close_transport()
            raise
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
        transport = self._transport
        terminated = getattr(transport.source, "terminated", None)
        if isinstance(terminated, asyncio.Future):
            terminated.add_done_callback(lambda _: self._transport_ended(transport))

    def _transport_ended(self, transport: Any) -> None:
        """The HCI transport closed (dongle unplugged, bridge gone): the radio is lost, and
        every link and scan with it."""
        if transport is not self._transport or self._device is None:
            return  # closed by us
        self._device = None
        links, self._links = self._links, {}
        for link in links.values():
            link.closing = True  # the core ends them all, with the radio as the reason
        for queue in self._scan_queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self.radio_lost(f"the HCI transport {self.transport_name} closed")

    async def reacquire(self) -> None:
        """Open the transport again and power the controller on."""
        await self._close_transport()
        await self.start()

    def is_connected(self, address: str) -> bool:
        return self._device is not None and address in self._links

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
            if not self.health.ready:
                raise self.health.unavailable()
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
        queue: asyncio.Queue[Advertisement | None] = asyncio.Queue(SCAN_BUFFER)

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
        self._scan_queues.add(queue)
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        try:
            try:
                async with asyncio.timeout(duration_s):
                    await device.start_scanning(active=True, filter_duplicates=False)
            except TimeoutError:
                raise BleTimeout(
                    f"The HCI controller did not start scanning within {duration_s:g} s",
                    "it may be stuck: unplug and replug it, or run 'mcp-ble doctor'",
                ) from None
            async for adv in until_deadline(queue, max(end - loop.time(), 0.0)):
                if adv is None:
                    raise self.health.unavailable()
                yield adv
        finally:
            self._scan_queues.discard(queue)
            device.remove_listener("advertisement", on_advertisement)
            if device is self._device and device.is_scanning:
                # Not past the scan's end: a controller that does not answer gets the stop
                # command in the background.
                stopping = loop.create_task(device.stop_scanning())
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)
                stopping.add_done_callback(lambda t: t.cancelled() or t.exception())
                await asyncio.wait({stopping}, timeout=STOP_GRACE_S)

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
            if self._cancelling:  # an abandoned attempt is still being wound down
                await asyncio.wait(set(self._cancelling), timeout=max(timeout_s - 0.1, 0))
            device = self.device
            # Our own deadline, not bumble's: bumble's timeout ends in a cancel command it waits
            # for, up to 10 s more when the controller does not answer. bumble's connect runs on
            # in the background after our deadline until the controller confirms the cancel.
            pending = asyncio.ensure_future(device.connect(peer_address, timeout=None))
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                    connection = await asyncio.shield(pending)
            except asyncio.CancelledError:
                self._cancel_in_background(device, address, pending)
                raise
            except (core.TimeoutError, TimeoutError):
                self._cancel_in_background(device, address, pending)
                raise BleTimeout(
                    f"Connecting to {address} timed out after {timeout_s:.1f} s",
                    "the device may be out of range or no longer advertising",
                ) from None
            except core.ConnectionError as exc:
                raise connect_error(address, exc.error_code) from None
            except hci.HCI_Error as exc:
                raise connect_error(address, exc.error_code) from None
            except core.InvalidStateError:
                raise OperationInProgress(
                    f"The controller is already connecting to another device than {address}",
                    "retry in a moment",
                ) from None
            link = _Link(connection, Peer(connection))
            self._bound_att(link.peer)
            connection.on(
                "disconnection", lambda reason: self._on_disconnection(address, link, reason)
            )
            self._links[address] = link
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                    mtu = self.requested_mtu
                    if self.mtu_chooser is not None:
                        data_length = await self._data_length(connection)
                        chosen = self.mtu_chooser(address, LinkInfo(data_length, mtu))
                        mtu = mtu if chosen is None else max(23, min(chosen, mtu))
                    await link.peer.request_mtu(mtu)
            except asyncio.CancelledError:
                task = asyncio.get_running_loop().create_task(self.disconnect(address))
                self._cancelling.add(task)
                task.add_done_callback(self._cancelling.discard)
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
                raise gatt_error(exc, address, "MTU exchange") from None

    async def _data_length(self, connection: Any) -> int | None:
        """Octets per link-layer packet: ask the controller for the most (LE Set Data Length,
        Core spec Vol 4, Part E, 7.8.33: 251 octets in 2120 us) and wait briefly for the LE Data
        Length Change event. None when the controller cannot say (command unsupported, no event)."""
        from bumble import hci

        changed = asyncio.get_running_loop().create_future()

        def on_change() -> None:
            if not changed.done():
                changed.set_result(None)

        connection.once(connection.EVENT_CONNECTION_DATA_LENGTH_CHANGE, on_change)
        try:
            await connection.set_data_length(251, 2120)
            async with asyncio.timeout(0.5):
                await changed
        except (hci.HCI_Error, TimeoutError):
            return None
        finally:
            connection.remove_listener(connection.EVENT_CONNECTION_DATA_LENGTH_CHANGE, on_change)
        return int(connection.data_length.max_tx_octets)

    def _cancel_in_background(self, device: Any, address: str, pending: Any) -> None:
        """Stop the controller initiating, without making the caller wait: the cancel command
        and a link that completes meanwhile are dealt with in the background."""
        task = asyncio.get_running_loop().create_task(
            self._cancel_connect(device, address, pending)
        )
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)

    async def _cancel_connect(self, device: Any, address: str, pending: Any) -> None:
        from bumble import hci

        try:
            async with asyncio.timeout(CANCEL_CLEANUP_S):
                if not pending.done():
                    await device.send_command(hci.HCI_LE_Create_Connection_Cancel_Command())
                connection = await pending  # a failure once the cancel took, or a late link
            # The controller completed the link before the cancel: it is not ours to keep.
            await connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        except BaseException as exc:
            log.debug("winding down the connect to %s: %r", address, exc)
            pending.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if pending.done() and not pending.cancelled():
                pending.exception()  # retrieved: asyncio must not log it

    def _bound_att(self, peer: Any) -> None:
        """Apply ``att_timeout_s`` to every ATT transaction of this link's GATT client (bumble's
        own is a fixed 30 s); an unanswered request raises bumble's ``TimeoutError`` as its own
        would. Configurable so that tests of dead links need not wait 30 s."""
        client = peer.gatt_client
        if self.att_timeout_s >= ATT_TRANSACTION_TIMEOUT_S:
            return
        send_request = client.send_request
        limit = self.att_timeout_s

        async def bounded_request(request: Any) -> Any:
            from bumble import core

            try:
                async with asyncio.timeout(limit):
                    return await send_request(request)
            except TimeoutError:
                raise core.TimeoutError(f"ATT timeout for {request.name}") from None

        client.send_request = bounded_request

    def _on_disconnection(self, address: str, link: _Link, reason: int) -> None:
        transport = self._transport
        terminated = getattr(getattr(transport, "source", None), "terminated", None)
        if isinstance(terminated, asyncio.Future) and terminated.done():
            # bumble flushes every link when its transport closes, before the transport's end
            # is reported: the link went with the radio.
            self._transport_ended(transport)
            return
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
            raise gatt_error(exc, address, operation) from None

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
