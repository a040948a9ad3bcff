"""The simplepyble backend: SimpleBLE's synchronous API behind our async contract.

Every simplepyble call blocks, so each runs on this backend's own thread pool, never on the event
loop, and one device's calls are serialized (ATT is sequential anyway). SimpleBLE calls back on its
native threads; results cross to the loop through :class:`ThreadHandoff` (bounded, one wakeup per
burst). The ``simplepyble`` module is a constructor argument, so tests run this code unchanged on a
fake module.

SimpleBLE names attributes by (service UUID, characteristic UUID[, descriptor UUID]) and exposes no
handles. This backend numbers them as a GATT server lays them out (service, characteristic
declaration and value, then each descriptor), so handles are stable for a given GATT database;
they match the device's real ATT handles only when its database has no gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mcp_ble.core.backend import Backend, NotifyCallback, until_deadline
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleError,
    BleTimeout,
    DeviceNotFound,
    GattError,
    NotConnected,
    NotPermitted,
)
from mcp_ble.core.models import (
    Advertisement,
    BackendInfo,
    GattCharacteristic,
    GattDescriptor,
    GattService,
    ScanFilter,
    copy_services,
)
from mcp_ble.core.values import parse_address, parse_uuid

from .errors import operation_error, radio_gone, unavailable
from .handoff import ThreadHandoff

log = logging.getLogger(__name__)
T = TypeVar("T")

CCCD = "00002902-0000-1000-8000-00805f9b34fb"
NO_TX_POWER = -32768
#: Advertisements / notifications that may wait for the loop; beyond this they drop (counted).
SCAN_BUFFER = 4096
NOTIFY_BUFFER = 4096


@dataclass
class _Char:
    service: str  # simplepyble's own UUID strings, passed back verbatim
    uuid: str
    can_notify: bool
    can_indicate: bool


@dataclass
class _Link:
    peripheral: Any
    payload: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    services: list[GattService] = field(default_factory=list)
    chars: dict[int, _Char] = field(default_factory=dict)
    descriptors: dict[int, tuple[int, str]] = field(default_factory=dict)
    handoffs: dict[int, ThreadHandoff[bytes]] = field(default_factory=dict)
    closing: bool = False


def _properties(char: Any) -> tuple[str, ...]:
    checks = (
        ("can_read", "read"),
        ("can_write_command", "write-without-response"),
        ("can_write_request", "write"),
        ("can_notify", "notify"),
        ("can_indicate", "indicate"),
    )
    return tuple(name for method, name in checks if getattr(char, method)())


class SimplepybleBackend(Backend):
    """Real adapters through SimpleBLE (optional extra; BUSL-1.1 licence)."""

    def __init__(
        self,
        module: Any,
        adapter_index: int = 0,
        *,
        start_timeout_s: float = 5.0,
        workers: int = 4,
    ) -> None:
        self.simplepyble = module
        self.adapter_index = adapter_index
        self.start_timeout_s = start_timeout_s
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adapter: Any = None
        self._adapter_name = ""
        self._peripherals: dict[str, Any] = {}
        self._links: dict[str, _Link] = {}
        self._scan_sink: Callable[[Advertisement], None] | None = None
        self.dropped_advertisements = 0

    def info(self) -> BackendInfo:
        details = {
            "adapter": self._adapter_name or f"index {self.adapter_index}",
            "simplepyble": str(getattr(self.simplepyble, "__version__", "unknown")),
        }
        if self.dropped_advertisements:
            details["dropped_advertisements"] = str(self.dropped_advertisements)
        return BackendInfo("simplepyble", simulated=False, details=details)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking simplepyble call on our threads."""
        if self._executor is None:
            raise BackendUnavailable("The simplepyble backend is not started", "start() it first")
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="simplepyble")
        adapter_cls = self.simplepyble.Adapter
        try:
            async with asyncio.timeout(self.start_timeout_s):
                if not await self._call(adapter_cls.bluetooth_enabled):
                    raise BackendUnavailable(
                        "The simplepyble backend cannot start: Bluetooth is turned off",
                        "turn it on in the system settings (Linux: bluetoothctl power on)",
                    )
                adapters = await self._call(adapter_cls.get_adapters)
        except BleError:
            self._shutdown_executor()
            raise
        except TimeoutError:
            self._shutdown_executor()
            raise BackendUnavailable(
                f"The simplepyble backend cannot start: the Bluetooth stack did not answer "
                f"within {self.start_timeout_s:g} s",
                "check that Bluetooth is on; run 'mcp-ble doctor'",
            ) from None
        except Exception as exc:
            self._shutdown_executor()
            raise unavailable(exc) from None
        if not adapters:
            self._shutdown_executor()
            raise BackendUnavailable(
                "The simplepyble backend cannot start: SimpleBLE found no Bluetooth adapter",
                'plug one in, or use backend = "simulated" on a machine without Bluetooth',
            )
        if self.adapter_index >= len(adapters):
            self._shutdown_executor()
            raise BackendUnavailable(
                f"The simplepyble backend cannot start: adapter index {self.adapter_index} does "
                f"not exist (SimpleBLE sees {len(adapters)})",
                f"set [backends.simplepyble] adapter to 0..{len(adapters) - 1}",
            )
        adapter = adapters[self.adapter_index]
        self._adapter = adapter
        with contextlib.suppress(Exception):
            self._adapter_name = f"{adapter.identifier()} [{adapter.address()}]"
        adapter.set_callback_on_scan_found(self._on_scan_result)
        adapter.set_callback_on_scan_updated(self._on_scan_result)

    def _failed(self, exc: BaseException, address: str, operation: str) -> BleError:
        """Our error for ``exc``; if it means the adapter or BlueZ went away, the radio is
        reported lost first (the core ends every link, and the backend re-acquires it)."""
        reason = radio_gone(exc)
        if reason is None:
            return operation_error(exc, address, operation)
        links, self._links = self._links, {}
        for link in links.values():
            link.closing = True
            for handoff in link.handoffs.values():
                handoff.close()
        self.radio_lost(reason)
        return self.health.unavailable()

    async def reacquire(self) -> None:
        """Ask SimpleBLE for the adapter again, on fresh worker threads."""
        self._shutdown_executor()
        await self.start()

    def is_connected(self, address: str) -> bool:
        # SimpleBLE's own is_connected() blocks; its disconnect callback keeps _links current.
        return address in self._links

    def _shutdown_executor(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def stop(self) -> None:
        for address in list(self._links):
            with contextlib.suppress(Exception):
                await self.disconnect(address)
        self._shutdown_executor()

    # ------------------------------------------------------------------ discovery

    def _on_scan_result(self, peripheral: Any) -> None:
        """On a SimpleBLE thread: read the peripheral there, hand the result to the loop."""
        sink = self._scan_sink
        try:
            address = parse_address(peripheral.address())
            self._peripherals[address] = peripheral
            if sink is None:
                return
            tx_power = peripheral.tx_power()
            service_uuids: list[str] = []
            service_data: dict[str, bytes] = {}
            for service in peripheral.services():
                uuid = parse_uuid(service.uuid())
                data = bytes(service.data())
                if data:
                    service_data[uuid] = data
                else:
                    service_uuids.append(uuid)
            adv = Advertisement(
                address=address,
                rssi=max(-127, min(20, int(peripheral.rssi()))),
                name=peripheral.identifier() or None,
                tx_power=None if tx_power == NO_TX_POWER else int(tx_power),
                connectable=bool(peripheral.is_connectable()),
                service_uuids=tuple(service_uuids),
                manufacturer_data={
                    int(k): bytes(v) for k, v in peripheral.manufacturer_data().items()
                },
                service_data=service_data,
            )
        except Exception:
            log.debug("unreadable scan result", exc_info=True)
            return
        sink(adv)

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Advertisement] = asyncio.Queue(SCAN_BUFFER)

        def enqueue(adv: Advertisement) -> None:
            try:
                queue.put_nowait(adv)
            except asyncio.QueueFull:
                self.dropped_advertisements += 1

        handoff: ThreadHandoff[Advertisement] = ThreadHandoff(loop, enqueue, SCAN_BUFFER)
        self._scan_sink = handoff.put
        try:
            try:
                await self._call(self._adapter.scan_start)
            except Exception as exc:
                raise self._failed(exc, "the adapter", "scan") from None
            async for adv in until_deadline(queue, duration_s):
                yield adv
        finally:
            self._scan_sink = None
            handoff.close()
            self.dropped_advertisements += handoff.dropped
            with contextlib.suppress(Exception):
                await self._call(self._adapter.scan_stop)

    # ------------------------------------------------------------------ connection

    async def connect(self, address: str, timeout_s: float) -> None:
        if address in self._links:
            return
        peripheral = self._peripherals.get(address)
        if peripheral is None:
            raise DeviceNotFound(
                f"SimpleBLE has not reported {address} since this backend started",
                "run ble_scan first, then connect",
            )
        assert self._executor is not None and self._loop is not None
        loop = self._loop
        peripheral.set_callback_on_disconnected(
            lambda: loop.call_soon_threadsafe(self._on_native_disconnect, address, peripheral)
        )
        attempt = self._executor.submit(peripheral.connect)
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(asyncio.wrap_future(attempt))
        except TimeoutError:
            # A native connect cannot be interrupted: undo it whenever it completes (the done
            # callback runs on the worker thread that made the call, where blocking is fine).
            attempt.add_done_callback(
                lambda f: f.cancelled() or f.exception() is not None or peripheral.disconnect()
            )
            raise BleTimeout(
                f"Connecting to {address} timed out after {timeout_s:.1f} s",
                "the device may be out of range or no longer advertising",
            ) from None
        except Exception as exc:
            raise self._failed(exc, address, "connect") from None
        link = _Link(peripheral, payload=20)
        self._links[address] = link
        try:
            await self._load_gatt(address, link)
        except BleError:
            await self.disconnect(address)
            raise

    async def _load_gatt(self, address: str, link: _Link) -> None:
        """Read the GATT layout and the MTU; number attributes as a server lays them out."""
        try:
            services = await self._call(link.peripheral.services)
            link.payload = int(await self._call(link.peripheral.mtu))
        except Exception as exc:
            raise self._failed(exc, address, "service discovery") from None
        handle = 0
        link.services, link.chars, link.descriptors = [], {}, {}
        for service in services:
            handle += 1
            model = GattService(parse_uuid(service.uuid()), handle)
            for char in service.characteristics():
                handle += 2  # declaration, then value
                value_handle = handle
                props = _properties(char)
                link.chars[value_handle] = _Char(
                    service.uuid(), char.uuid(), "notify" in props, "indicate" in props
                )
                descriptors = []
                for desc in char.descriptors():
                    handle += 1
                    link.descriptors[handle] = (value_handle, desc.uuid())
                    descriptors.append(GattDescriptor(parse_uuid(desc.uuid()), handle))
                model.characteristics.append(
                    GattCharacteristic(
                        parse_uuid(char.uuid()), value_handle, props, descriptors, model.uuid
                    )
                )
            link.services.append(model)

    def _on_native_disconnect(self, address: str, peripheral: Any) -> None:
        """On the loop. SimpleBLE reports requested disconnects too: those are ignored."""
        link = self._links.get(address)
        if link is None or link.peripheral is not peripheral or link.closing:
            return
        del self._links[address]
        for handoff in link.handoffs.values():
            handoff.close()
        self.on_disconnect(address, "the link dropped (SimpleBLE reports no reason)")

    async def disconnect(self, address: str) -> None:
        link = self._links.pop(address, None)
        if link is None:
            return
        link.closing = True
        for handoff in link.handoffs.values():
            handoff.close()
        try:
            async with asyncio.timeout(10):
                await self._call(link.peripheral.disconnect)
        except Exception as exc:
            log.info("disconnecting %s: %s", address, exc)

    def _linked(self, address: str) -> _Link:
        link = self._links.get(address)
        if link is None:
            raise NotConnected(f"{address} is not connected", "call ble_connect first")
        return link

    def mtu(self, address: str) -> int:
        """SimpleBLE's ``mtu()`` is the payload size (ATT MTU - 3)."""
        return max(23, min(517, self._linked(address).payload + 3))

    async def discover(self, address: str) -> list[GattService]:
        link = self._linked(address)
        async with link.lock:
            await self._load_gatt(address, link)
        return copy_services(link.services)

    # ------------------------------------------------------------------ transfer

    async def _op(self, address: str, link: _Link, operation: str, fn: Callable[[], T]) -> T:
        async with link.lock:
            try:
                return await self._call(fn)
            except Exception as exc:
                raise self._failed(exc, address, operation) from None

    def _char(self, address: str, handle: int) -> tuple[_Link, _Char]:
        link = self._linked(address)
        char = link.chars.get(handle)
        if char is None:
            raise GattError(0x01, "request", "list the GATT tree again (ble_services)")
        return link, char

    async def read(self, address: str, handle: int) -> bytes:
        link, char = self._char(address, handle)
        read = functools.partial(link.peripheral.read, char.service, char.uuid)
        return bytes(await self._op(address, link, "read", read))

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        link, char = self._char(address, handle)
        method = link.peripheral.write_request if response else link.peripheral.write_command
        await self._op(
            address, link, "write", functools.partial(method, char.service, char.uuid, bytes(data))
        )

    def _descriptor(self, address: str, handle: int) -> tuple[_Link, _Char, str]:
        link = self._linked(address)
        entry = link.descriptors.get(handle)
        if entry is None:
            raise GattError(0x01, "descriptor request", "list the GATT tree again")
        return link, link.chars[entry[0]], entry[1]

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        link, char, uuid = self._descriptor(address, handle)
        read = functools.partial(link.peripheral.descriptor_read, char.service, char.uuid, uuid)
        return bytes(await self._op(address, link, "descriptor read", read))

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        link, char, uuid = self._descriptor(address, handle)
        if parse_uuid(uuid) == CCCD:
            # BlueZ and CoreBluetooth keep the CCCD to themselves: enabling or disabling
            # notifications is what such a write means, so do that.
            if len(data) != 2:
                raise GattError(0x0D, "descriptor write", "the CCCD holds exactly two bytes")
            value_handle = link.descriptors[handle][0]
            if int.from_bytes(data, "little") & 0x03:
                await self._subscribe(address, link, value_handle, None, data[0] & 0x01 == 0)
            else:
                await self.stop_notify(address, value_handle)
            return
        write = functools.partial(
            link.peripheral.descriptor_write, char.service, char.uuid, uuid, bytes(data)
        )
        await self._op(address, link, "descriptor write", write)

    async def _subscribe(
        self,
        address: str,
        link: _Link,
        handle: int,
        callback: NotifyCallback | None,
        indicate: bool,
    ) -> None:
        char = link.chars[handle]
        assert self._loop is not None
        old = link.handoffs.pop(handle, None)
        if old is not None:
            old.close()
            await self._op(
                address,
                link,
                "unsubscription",
                functools.partial(link.peripheral.unsubscribe, char.service, char.uuid),
            )
        deliver = callback or (lambda data: None)  # a bare CCCD write: nobody reads them
        handoff: ThreadHandoff[bytes] = ThreadHandoff(self._loop, deliver, NOTIFY_BUFFER)
        use_indicate = indicate or not char.can_notify
        method = link.peripheral.indicate if use_indicate else link.peripheral.notify
        await self._op(
            address,
            link,
            "subscription",
            functools.partial(method, char.service, char.uuid, handoff.put),
        )
        link.handoffs[handle] = handoff

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        link, char = self._char(address, handle)
        if not (char.can_notify or char.can_indicate):
            raise NotPermitted(
                f"Characteristic handle {handle} on {address} neither notifies nor indicates",
                "read it instead",
            )
        await self._subscribe(address, link, handle, callback, indicate=False)

    async def stop_notify(self, address: str, handle: int) -> None:
        link, char = self._char(address, handle)
        handoff = link.handoffs.pop(handle, None)
        if handoff is not None:
            handoff.close()
        unsubscribe = functools.partial(link.peripheral.unsubscribe, char.service, char.uuid)
        await self._op(address, link, "unsubscription", unsubscribe)
