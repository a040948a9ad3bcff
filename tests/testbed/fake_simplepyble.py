"""A stand-in for the ``simplepyble`` module: its synchronous API on the test bed.

simplepyble blocks in every call and invokes callbacks on its own native threads. This fake does
the same: a background thread runs an event loop with a world's virtual peripherals and a bumble
central on a LocalLink; each method blocks its caller until the bumble operation is done, and
callbacks (scan results, notifications, disconnections) run on that background thread. The
production backend therefore meets the hard parts for real: blocking calls must stay off its event
loop and callbacks must cross threads safely.

Where behaviour is platform-specific, it follows SimpleBLE on Linux (BlueZ): ``mtu()`` is the
payload size (ATT MTU - 3), errors are ``RuntimeError`` carrying BlueZ's D-Bus error text, the CCCD
cannot be written directly, and the disconnected callback fires for every disconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bumble import att, core
from bumble.device import Device
from bumble.device import Peer as BumblePeer
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address
from bumble.link import LocalLink

from mcp_ble.backends.bumble.advertising import decode, uuid_from_le
from mcp_ble.backends.simulated.world import World

from .link import LinkTransport
from .peripherals import VirtualWorld

CCCD = "00002902-0000-1000-8000-00805f9b34fb"
NO_TX_POWER = -32768
ATT_MESSAGES = {
    0x02: "org.bluez.Error.NotPermitted: Read not permitted",
    0x03: "org.bluez.Error.NotPermitted: Write not permitted",
    0x05: "org.bluez.Error.NotAuthorized: Not authorized",
    0x06: "org.bluez.Error.NotSupported: Request not supported",
    0x0D: "org.bluez.Error.InvalidValueLength: Invalid Length",
}


def _uuid(bumble_uuid: Any) -> str:
    return uuid_from_le(bumble_uuid.to_bytes(force_128=True))


def _bluez_error(exc: BaseException) -> RuntimeError:
    if isinstance(exc, att.ATT_Error):
        code = int(exc.error_code)
        text = ATT_MESSAGES.get(
            code, f"org.bluez.Error.Failed: Operation failed with ATT error: 0x{code:02x}"
        )
        return RuntimeError(text)
    if isinstance(exc, asyncio.CancelledError | core.ConnectionError):
        return RuntimeError("org.bluez.Error.Failed: Not connected")
    if isinstance(exc, core.TimeoutError | TimeoutError):
        return RuntimeError("org.bluez.Error.Failed: Operation timed out")
    return RuntimeError(f"org.bluez.Error.Failed: {exc}")


class FakeSimplepyble:
    """The module: ``Adapter`` and ``Peripheral`` classes plus the background thread they use."""

    __version__ = "0.0.0-testbed"

    def __init__(self, world: World) -> None:
        self.world = world
        self.loop: asyncio.AbstractEventLoop | None = None
        self.virtual: VirtualWorld | None = None
        self.central: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        fake = self

        class Adapter(_Adapter):
            _fake = fake

        self.Adapter = Adapter
        self.Peripheral = Peripheral

    # ------------------------------------------------------------------ the background thread

    def start(self) -> FakeSimplepyble:
        self._thread = threading.Thread(target=self._run, name="fake-simplepyble", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake simplepyble thread did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._setup())
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _setup(self) -> None:
        link = LocalLink()
        self.virtual = await VirtualWorld(self.world, link).start()
        transport = LinkTransport(link, "simpleble-central")
        self.central = Device.with_hci(
            "simpleble", Address("F0:00:00:00:00:02"), transport.source, transport.sink
        )
        await self.central.power_on()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run ``coro`` on the background loop and block until it is done (what a native call
        does); errors come back as simplepyble's RuntimeErrors."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except RuntimeError:
            raise
        except BaseException as exc:
            raise _bluez_error(exc) from None

    async def drop_link(self, address: str) -> None:
        """For the contract suite: the peripheral ends the link (awaitable from any loop)."""
        assert self.loop is not None and self.virtual is not None
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self.virtual.drop_link(address), self.loop)
        )

    def stop(self) -> None:
        if self.loop is None:
            return

        async def teardown() -> None:
            for connection in list(self.central.connections.values()):
                with contextlib.suppress(Exception):
                    await connection.disconnect()
            if self.central.is_scanning:
                await self.central.stop_scanning()
            if self.virtual is not None:
                await self.virtual.stop()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(teardown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)


# ---------------------------------------------------------------------- GATT objects


class Descriptor:
    def __init__(self, uuid: str) -> None:
        self._uuid = uuid

    def uuid(self) -> str:
        return self._uuid


class Characteristic:
    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy
        self._uuid = _uuid(proxy.uuid)
        self._descriptors = [Descriptor(_uuid(d.type)) for d in proxy.descriptors]

    def uuid(self) -> str:
        return self._uuid

    def descriptors(self) -> list[Descriptor]:
        return list(self._descriptors)

    def _has(self, bit: int) -> bool:
        return bool(int(self._proxy.properties) & bit)

    def can_read(self) -> bool:
        return self._has(0x02)

    def can_write_command(self) -> bool:
        return self._has(0x04)

    def can_write_request(self) -> bool:
        return self._has(0x08)

    def can_notify(self) -> bool:
        return self._has(0x10)

    def can_indicate(self) -> bool:
        return self._has(0x20)

    def capabilities(self) -> list[str]:
        names = [
            (self.can_read(), "read"),
            (self.can_write_command(), "write_command"),
            (self.can_write_request(), "write_request"),
            (self.can_notify(), "notify"),
            (self.can_indicate(), "indicate"),
        ]
        return [name for present, name in names if present]


class Service:
    def __init__(self, uuid: str, characteristics: list[Characteristic], data: bytes = b"") -> None:
        self._uuid = uuid
        self._characteristics = characteristics
        self._data = data

    def uuid(self) -> str:
        return self._uuid

    def data(self) -> bytes:
        return self._data

    def characteristics(self) -> list[Characteristic]:
        return list(self._characteristics)


# ---------------------------------------------------------------------- Peripheral


class Peripheral:
    """One remote device, as simplepyble hands it out from a scan."""

    def __init__(self, fake: FakeSimplepyble, report: Any) -> None:
        self._fake = fake
        self._address = report.address
        self._connection: Any = None
        self._peer: Any = None
        self._services: list[Service] = []
        self._on_connected: Callable[[], None] | None = None
        self._on_disconnected: Callable[[], None] | None = None
        self._subscriptions: dict[tuple[str, str], Callable[[bytes], None]] = {}
        self.update(report)

    def update(self, report: Any) -> None:
        self._adv = decode(
            self._address.to_string(False), report.rssi, bytes(report.data), report.is_connectable
        )

    # what a scan tells
    def initialized(self) -> bool:
        return True

    def identifier(self) -> str:
        return self._adv.name or ""

    def address(self) -> str:
        return self._adv.address

    def rssi(self) -> int:
        return self._adv.rssi

    def tx_power(self) -> int:
        return self._adv.tx_power if self._adv.tx_power is not None else NO_TX_POWER

    def is_connectable(self) -> bool:
        return self._adv.connectable

    def manufacturer_data(self) -> dict[int, bytes]:
        return dict(self._adv.manufacturer_data)

    def services(self) -> list[Service]:
        if self._connection is not None:
            return list(self._services)
        advertised = [Service(u, []) for u in self._adv.service_uuids]
        advertised += [Service(u, [], d) for u, d in self._adv.service_data.items()]
        return advertised

    def is_paired(self) -> bool:
        return False

    def unpair(self) -> None:
        self.disconnect()

    # connection
    def set_callback_on_connected(self, callback: Callable[[], None]) -> None:
        self._on_connected = callback

    def set_callback_on_disconnected(self, callback: Callable[[], None]) -> None:
        self._on_disconnected = callback

    def is_connected(self) -> bool:
        return self._connection is not None

    def mtu(self) -> int:
        return int(self._connection.att_mtu) - 3 if self._connection is not None else 0

    def connect(self) -> None:
        if self._connection is None:
            self._fake.call(self._connect())
        if self._on_connected is not None:
            self._on_connected()

    async def _connect(self) -> None:
        connection = await self._fake.central.connect(self._address, timeout=10)
        connection.on("disconnection", self._disconnected)
        self._connection = connection
        self._peer = BumblePeer(connection)
        await self._peer.request_mtu(517)
        await self._peer.discover_services()
        services = []
        for proxy in self._peer.services:
            await proxy.discover_characteristics()
            for char in proxy.characteristics:
                await char.discover_descriptors()
            services.append(
                Service(_uuid(proxy.uuid), [Characteristic(c) for c in proxy.characteristics])
            )
        self._services = services

    def _disconnected(self, reason: int) -> None:  # on the background thread, like SimpleBLE
        self._connection = None
        self._subscriptions.clear()
        if self._on_disconnected is not None:
            self._on_disconnected()

    def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        with contextlib.suppress(RuntimeError):
            self._fake.call(connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR))
        deadline = time.monotonic() + 5
        while self._connection is not None and time.monotonic() < deadline:
            time.sleep(0.005)

    # GATT, addressed by (service UUID, characteristic UUID) strings as in simplepyble
    def _characteristic(self, service: str, characteristic: str) -> Any:
        if self._connection is None:
            raise RuntimeError("org.bluez.Error.Failed: Not connected")
        for proxy in self._peer.services:
            if _uuid(proxy.uuid) == service.lower():
                for char in proxy.characteristics:
                    if _uuid(char.uuid) == characteristic.lower():
                        return char
        raise RuntimeError(f"Characteristic {characteristic} not found")

    def _descriptor(self, service: str, characteristic: str, descriptor: str) -> Any:
        for desc in self._characteristic(service, characteristic).descriptors:
            if _uuid(desc.type) == descriptor.lower():
                return desc
        raise RuntimeError(f"Descriptor {descriptor} not found")

    def read(self, service: str, characteristic: str) -> bytes:
        char = self._characteristic(service, characteristic)
        return bytes(self._fake.call(self._peer.read_value(char)))

    def write_request(self, service: str, characteristic: str, payload: bytes) -> None:
        char = self._characteristic(service, characteristic)
        self._fake.call(self._peer.write_value(char, bytes(payload), with_response=True))

    def write_command(self, service: str, characteristic: str, payload: bytes) -> None:
        char = self._characteristic(service, characteristic)
        self._fake.call(self._peer.write_value(char, bytes(payload), with_response=False))

    def _subscribe(self, service: str, characteristic: str, callback: Any, notify: bool) -> None:
        char = self._characteristic(service, characteristic)

        def deliver(value: bytes) -> None:  # runs on the background thread
            callback(bytes(value))

        self._fake.call(self._peer.subscribe(char, deliver, prefer_notify=notify))
        self._subscriptions[(service, characteristic)] = deliver

    def notify(self, service: str, characteristic: str, callback: Callable[[bytes], None]) -> None:
        self._subscribe(service, characteristic, callback, True)

    def indicate(
        self, service: str, characteristic: str, callback: Callable[[bytes], None]
    ) -> None:
        self._subscribe(service, characteristic, callback, False)

    def unsubscribe(self, service: str, characteristic: str) -> None:
        char = self._characteristic(service, characteristic)
        deliver = self._subscriptions.pop((service, characteristic), None)
        self._fake.call(self._peer.gatt_client.unsubscribe(char, deliver, force=True))

    def descriptor_read(self, service: str, characteristic: str, descriptor: str) -> bytes:
        desc = self._descriptor(service, characteristic, descriptor)
        return bytes(self._fake.call(self._peer.read_value(desc)))

    def descriptor_write(
        self, service: str, characteristic: str, descriptor: str, payload: bytes
    ) -> None:
        if descriptor.lower() == CCCD:  # BlueZ keeps the CCCD to itself
            raise RuntimeError("org.bluez.Error.NotPermitted: Write not permitted")
        desc = self._descriptor(service, characteristic, descriptor)
        self._fake.call(self._peer.write_value(desc, bytes(payload), with_response=True))


# ---------------------------------------------------------------------- Adapter


class _Adapter:
    _fake: FakeSimplepyble

    def __init__(self) -> None:
        self._results: dict[str, Peripheral] = {}
        self._scanning = False
        self._on_found: Callable[[Any], None] | None = None
        self._on_updated: Callable[[Any], None] | None = None
        self._on_start: Callable[[], None] | None = None
        self._on_stop: Callable[[], None] | None = None

    @staticmethod
    def bluetooth_enabled() -> bool:
        return True

    @classmethod
    def get_adapters(cls) -> list[_Adapter]:
        return [cls()]

    def initialized(self) -> bool:
        return True

    def identifier(self) -> str:
        return "hci0"

    def address(self) -> str:
        return "F0:00:00:00:00:02"

    def is_powered(self) -> bool:
        return True

    def set_callback_on_scan_start(self, callback: Callable[[], None]) -> None:
        self._on_start = callback

    def set_callback_on_scan_stop(self, callback: Callable[[], None]) -> None:
        self._on_stop = callback

    def set_callback_on_scan_found(self, callback: Callable[[Any], None]) -> None:
        self._on_found = callback

    def set_callback_on_scan_updated(self, callback: Callable[[Any], None]) -> None:
        self._on_updated = callback

    def _on_report(self, report: Any) -> None:  # on the background thread
        address = report.address.to_string(False)
        peripheral = self._results.get(address)
        if peripheral is None:
            peripheral = self._results[address] = Peripheral(self._fake, report)
            if self._on_found is not None:
                self._on_found(peripheral)
        else:
            peripheral.update(report)
            if self._on_updated is not None:
                self._on_updated(peripheral)

    def scan_start(self) -> None:
        central = self._fake.central

        async def start() -> None:
            central.on("advertisement", self._on_report)
            await central.start_scanning(active=True, filter_duplicates=False)

        self._fake.call(start())
        self._scanning = True
        if self._on_start is not None:
            self._on_start()

    def scan_stop(self) -> None:
        central = self._fake.central

        async def stop() -> None:
            central.remove_listener("advertisement", self._on_report)
            if central.is_scanning:
                await central.stop_scanning()

        self._fake.call(stop())
        self._scanning = False
        if self._on_stop is not None:
            self._on_stop()

    def scan_is_active(self) -> bool:
        return self._scanning

    def scan_for(self, timeout_ms: int) -> None:
        self.scan_start()
        time.sleep(timeout_ms / 1000)
        self.scan_stop()

    def scan_get_results(self) -> list[Peripheral]:
        return list(self._results.values())

    def get_paired_peripherals(self) -> list[Peripheral]:
        return []
