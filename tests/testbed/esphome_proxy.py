"""A fake ESPHome Bluetooth proxy: the native API on 127.0.0.1, a bumble central on a LocalLink.

It answers what an ESP32 running ESPHome's ``bluetooth_proxy`` component answers, with
aioesphomeapi's own protobuf messages (framing in :mod:`.esphome_api`): hello, device info with
the Bluetooth-proxy feature flags (passive scan, active connections, remote caching, raw
advertisements, scanner state and mode), raw advertisement batches, the scanner state, device
connect/disconnect with the negotiated MTU, the GATT service list, reads, writes, notifications,
and connections-free reports. The peripherals are bumble devices on the same link: the test
bed's virtual peripherals serving a world file, or any others a test puts there.

As on the ESP32 (connection version 3, "remote caching"), a notify request only registers the
handle on the proxy; the client writes the CCCD itself. ``stop()`` closes every API connection
and the listening socket, as a proxy that loses power does; ``start()`` serves again on the same
port.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aioesphomeapi import (
    BluetoothDeviceRequestType,
    BluetoothProxyFeature,
    BluetoothScannerMode,
    BluetoothScannerState,
)
from aioesphomeapi import api_pb2 as pb
from bumble import att, core
from bumble.device import Device, Peer
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address
from bumble.link import LocalLink

from mcp_ble.backends.simulated.world import World

from .esphome_api import Channel, HandshakeFailed
from .link import LinkTransport
from .peripherals import VirtualWorld

FEATURES = (
    BluetoothProxyFeature.PASSIVE_SCAN
    | BluetoothProxyFeature.ACTIVE_CONNECTIONS
    | BluetoothProxyFeature.REMOTE_CACHING
    | BluetoothProxyFeature.RAW_ADVERTISEMENTS
    | BluetoothProxyFeature.FEATURE_STATE_AND_MODE
)
CONNECT = (
    BluetoothDeviceRequestType.CONNECT_V3_WITH_CACHE,
    BluetoothDeviceRequestType.CONNECT_V3_WITHOUT_CACHE,
)
#: ESPHome sends raw advertisements in batches of at most this many.
BATCH = 16
#: ESP-IDF's error for a connect that did not complete (ESP_GATT_CONN_FAIL_ESTABLISH).
CONN_FAIL_ESTABLISH = 0x3E
BASE = "-0000-1000-8000-00805f9b34fb"


def mac_int(address: str) -> int:
    return int(address.replace(":", ""), 16)


def mac_str(value: int) -> str:
    raw = f"{value:012X}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def _uuid(target: Any, bumble_uuid: Any) -> None:
    """ESPHome's UUID fields: ``short_uuid`` for SIG 16-bit UUIDs (API 1.12+), else the 128-bit
    UUID as two 64-bit halves."""
    full = bumble_uuid.to_bytes(force_128=True)[::-1].hex()
    text = f"{full[:8]}-{full[8:12]}-{full[12:16]}-{full[16:20]}-{full[20:]}"
    if text.endswith(BASE) and text.startswith("0000"):
        target.short_uuid = int(text[:8], 16)
    else:
        target.uuid.extend([int(full[:16], 16), int(full[16:], 16)])


@dataclass
class _Link:
    address: int
    connection: Any
    peer: Any
    session: _Session
    #: Value handles whose notifications and indications go to the client.
    notifying: dict[int, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FakeProxy:
    """One fake proxy. ``psk``: the base64 Noise key (None: plaintext). ``slots``: how many
    links it holds at once (ESPHome's ``connection_slots``, 3 by default). ``rssi_offset``: added
    to every RSSI it reports (a proxy farther from the devices hears them weaker)."""

    def __init__(
        self,
        link: LocalLink,
        *,
        name: str = "fake-proxy",
        mac: str = "AC:0B:FB:00:00:01",
        psk: str | None = None,
        slots: int = 3,
        host: str = "127.0.0.1",
        port: int = 0,
        rssi_offset: int = 0,
        password: str | None = None,
        features: int = FEATURES,
    ) -> None:
        self.link, self.name, self.mac, self.psk = link, name, mac, psk
        self.slots, self.host, self.port = slots, host, port
        self.rssi_offset = rssi_offset
        #: The legacy API password (ESPHome's ``api: password:``), None: none asked.
        self.password = password
        #: The bluetooth_proxy feature flags it reports (a passive proxy lacks connections).
        self.features = features
        self.device: Any = None
        self.server: asyncio.Server | None = None
        self.sessions: set[_Session] = set()
        self.links: dict[int, _Link] = {}
        self.connecting: set[int] = set()
        #: A hung proxy (Wi-Fi gone, firmware stuck): connections stay open, nothing answers.
        self.frozen = False
        self.accepted = 0
        self.handshake_failures = 0
        self._transport: LinkTransport | None = None

    async def start(self) -> FakeProxy:
        self._transport = LinkTransport(self.link, f"proxy-{self.name}")
        transport = self._transport
        self.device = Device.with_hci(
            self.name, Address(self.mac, Address.PUBLIC_DEVICE_ADDRESS),
            transport.source, transport.sink,
        )  # fmt: skip
        await self.device.power_on()
        self.device.on("advertisement", self._on_advertisement)
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Power off: every API connection and link ends at once."""
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            session.abort()
        for link in list(self.links.values()):
            with contextlib.suppress(Exception):
                await link.connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        self.links.clear()
        if self.device is not None:
            with contextlib.suppress(Exception):
                await self.device.stop_scanning()
            self.device.remove_listener("advertisement", self._on_advertisement)
        if self._transport is not None:
            await self._transport.close()
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None
        for _ in range(5):
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ API connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            channel = await Channel.accept(reader, writer, self.psk, self.name, self.mac)
        except (HandshakeFailed, asyncio.IncompleteReadError, ConnectionError):
            self.handshake_failures += 1
            writer.close()
            return
        self.accepted += 1
        session = _Session(self, channel)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            await session.end()

    # ------------------------------------------------------------------ scanning

    def _scanning_wanted(self) -> bool:
        return any(s.advertisements for s in self.sessions)

    async def update_scanning(self) -> None:
        wanted = self._scanning_wanted()
        if wanted and not self.device.is_scanning:
            await self.device.start_scanning(active=True, filter_duplicates=False)
        elif not wanted and self.device.is_scanning:
            await self.device.stop_scanning()

    def _on_advertisement(self, report: Any) -> None:
        if self.frozen:
            return
        adv = pb.BluetoothLERawAdvertisement(
            address=mac_int(report.address.to_string(False)),
            rssi=max(-127, report.rssi + self.rssi_offset),
            address_type=int(report.address.address_type) & 1,
            data=bytes(report.data),
        )
        for session in self.sessions:
            if session.advertisements:
                session.queue_advertisement(adv)

    # ------------------------------------------------------------------ slots

    def free(self) -> int:
        return max(0, self.slots - len(self.links) - len(self.connecting))

    def report_slots(self) -> None:
        message = pb.BluetoothConnectionsFreeResponse(
            free=self.free(), limit=self.slots, allocated=[*self.links, *self.connecting]
        )
        for session in self.sessions:
            if session.slot_reports:
                session.channel.send(message)


class _Session:
    """One API client: its subscriptions and the requests it sends."""

    def __init__(self, proxy: FakeProxy, channel: Channel) -> None:
        self.proxy = proxy
        self.channel = channel
        self.advertisements = False
        self.slot_reports = False
        self._batch: list[Any] = []
        self._flush: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def abort(self) -> None:
        transport = self.channel.writer.transport
        transport.abort()

    async def end(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._flush is not None:
            self._flush.cancel()
        self.advertisements = False
        with contextlib.suppress(Exception):
            await self.proxy.update_scanning()
        # ESPHome drops the links an API client held once it is gone.
        for address, link in list(self.proxy.links.items()):
            if link.session is self:
                self.proxy.links.pop(address, None)
                with contextlib.suppress(Exception):
                    await link.connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        self.channel.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def queue_advertisement(self, adv: Any) -> None:
        self._batch.append(adv)
        if len(self._batch) >= BATCH:
            self._send_batch()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(0.01, self._send_batch)

    def _send_batch(self) -> None:
        self._flush = None
        batch, self._batch = self._batch, []
        if batch:
            self.channel.send(pb.BluetoothLERawAdvertisementsResponse(advertisements=batch))

    async def run(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, HandshakeFailed):
            while True:
                message = await self.channel.receive()
                if message is None or self.proxy.frozen:
                    continue
                if isinstance(message, pb.DisconnectRequest):
                    self.channel.send(pb.DisconnectResponse())
                    return
                await self.handle(message)

    async def handle(self, msg: Any) -> None:
        send, proxy = self.channel.send, self.proxy
        if isinstance(msg, pb.HelloRequest):
            send(
                pb.HelloResponse(
                    api_version_major=1,
                    api_version_minor=12,
                    server_info="fake ESPHome bluetooth_proxy (mcp-ble tests)",
                    name=proxy.name,
                )
            )
        elif isinstance(msg, pb.AuthenticationRequest):
            if proxy.password is not None and msg.password != proxy.password:
                send(pb.AuthenticationResponse(invalid_password=True))
        elif isinstance(msg, pb.PingRequest):
            send(pb.PingResponse())
        elif isinstance(msg, pb.DeviceInfoRequest):
            send(
                pb.DeviceInfoResponse(
                    name=proxy.name,
                    mac_address=proxy.mac,
                    bluetooth_mac_address=proxy.mac,
                    esphome_version="2025.11.0",
                    model="esp32dev",
                    bluetooth_proxy_feature_flags=int(proxy.features),
                    uses_password=proxy.password is not None,
                    api_encryption_supported=proxy.psk is not None,
                )
            )
        elif isinstance(msg, pb.ListEntitiesRequest):
            send(pb.ListEntitiesDoneResponse())
        elif isinstance(msg, pb.SubscribeBluetoothLEAdvertisementsRequest):
            if any(other.advertisements for other in proxy.sessions if other is not self):
                return  # ESPHome: "Only one API subscription is allowed at a time"
            self.advertisements = True
            await proxy.update_scanning()
            # Firmware with FEATURE_STATE_AND_MODE confirms a subscription with the scanner state.
            send(
                pb.BluetoothScannerStateResponse(
                    state=BluetoothScannerState.RUNNING,
                    mode=BluetoothScannerMode.ACTIVE,
                    configured_mode=BluetoothScannerMode.ACTIVE,
                )
            )
        elif isinstance(msg, pb.UnsubscribeBluetoothLEAdvertisementsRequest):
            self.advertisements = False
            await proxy.update_scanning()
        elif isinstance(msg, pb.SubscribeBluetoothConnectionsFreeRequest):
            self.slot_reports = True
            proxy.report_slots()
        elif isinstance(msg, pb.BluetoothDeviceRequest):
            self._device_request(msg)
        elif isinstance(msg, pb.BluetoothGATTGetServicesRequest):
            self._gatt(msg.address, 0, self._services(msg.address))
        elif isinstance(msg, pb.BluetoothGATTReadRequest | pb.BluetoothGATTReadDescriptorRequest):
            self._gatt(msg.address, msg.handle, self._read(msg.address, msg.handle))
        elif isinstance(msg, pb.BluetoothGATTWriteRequest):
            self._gatt(
                msg.address,
                msg.handle,
                self._write(msg.address, msg.handle, msg.data, msg.response),
            )
        elif isinstance(msg, pb.BluetoothGATTWriteDescriptorRequest):
            self._gatt(
                msg.address, msg.handle, self._write(msg.address, msg.handle, msg.data, True)
            )
        elif isinstance(msg, pb.BluetoothGATTNotifyRequest):
            self._gatt(msg.address, msg.handle, self._notify(msg.address, msg.handle, msg.enable))

    # ------------------------------------------------------------------ links

    def _state(self, address: int, connected: bool, mtu: int = 0, error: int = 0) -> None:
        self.channel.send(
            pb.BluetoothDeviceConnectionResponse(
                address=address, connected=connected, mtu=mtu, error=error
            )
        )

    def _device_request(self, msg: Any) -> None:
        proxy, address = self.proxy, msg.address
        if msg.request_type in CONNECT:
            if address in proxy.links or address in proxy.connecting:
                link = proxy.links.get(address)
                if link is not None:
                    self._state(address, True, link.connection.att_mtu)
                return
            if proxy.free() == 0:
                self._state(address, False, error=CONN_FAIL_ESTABLISH)
                return
            proxy.connecting.add(address)
            proxy.report_slots()
            self.spawn(self._connect(address, msg.address_type))
        elif msg.request_type == BluetoothDeviceRequestType.DISCONNECT:
            link = proxy.links.get(address)
            if link is None:
                self._state(address, False)
                return
            self.spawn(link.connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR))
        elif msg.request_type == BluetoothDeviceRequestType.CLEAR_CACHE:
            self.channel.send(pb.BluetoothDeviceClearCacheResponse(address=address, success=True))

    async def _connect(self, address: int, address_type: int) -> None:
        proxy = self.proxy
        kind = Address.RANDOM_DEVICE_ADDRESS if address_type else Address.PUBLIC_DEVICE_ADDRESS
        try:
            connection = await proxy.device.connect(Address(mac_str(address), kind), timeout=10)
            peer = Peer(connection)
            await peer.request_mtu(517)
        except (core.BaseBumbleError, TimeoutError, OSError) as exc:
            proxy.connecting.discard(address)
            proxy.report_slots()
            self._state(address, False, error=getattr(exc, "error_code", CONN_FAIL_ESTABLISH))
            return
        proxy.connecting.discard(address)
        link = _Link(address, connection, peer, self)
        proxy.links[address] = link

        def on_disconnection(reason: int) -> None:
            if proxy.links.get(address) is link:
                del proxy.links[address]
                self._state(address, False, error=int(reason))
                proxy.report_slots()

        connection.on("disconnection", on_disconnection)
        self._state(address, True, connection.att_mtu)
        proxy.report_slots()

    # ------------------------------------------------------------------ GATT

    def _gatt(self, address: int, handle: int, operation: Any) -> None:
        """Run one GATT operation in order with the others on its link; an ATT error becomes
        BluetoothGATTErrorResponse, a missing link the ESPHome "not connected" error (-1)."""
        link = self.proxy.links.get(address)
        if link is None:
            operation.close()
            self.channel.send(
                pb.BluetoothGATTErrorResponse(address=address, handle=handle, error=-1)
            )
            return

        async def run() -> None:
            async with link.lock:
                try:
                    await operation
                except att.ATT_Error as exc:
                    self.channel.send(
                        pb.BluetoothGATTErrorResponse(
                            address=address, handle=handle, error=int(exc.error_code)
                        )
                    )
                except (core.BaseBumbleError, asyncio.CancelledError, TimeoutError, KeyError):
                    # KeyError: the link went down while the operation waited its turn.
                    self.channel.send(
                        pb.BluetoothGATTErrorResponse(address=address, handle=handle, error=-1)
                    )

        self.spawn(run())

    async def _services(self, address: int) -> None:
        link = self.proxy.links[address]
        peer = link.peer
        if not peer.services:
            await peer.discover_services()
            for service in peer.services:
                await service.discover_characteristics()
                for char in service.characteristics:
                    await char.discover_descriptors()
        for service in peer.services:
            message = pb.BluetoothGATTGetServicesResponse(address=address)
            entry = message.services.add(handle=service.handle)
            _uuid(entry, service.uuid)
            for char in service.characteristics:
                char_entry = entry.characteristics.add(
                    handle=char.handle, properties=int(char.properties)
                )
                _uuid(char_entry, char.uuid)
                for desc in char.descriptors:
                    desc_entry = char_entry.descriptors.add(handle=desc.handle)
                    _uuid(desc_entry, desc.type)
            self.channel.send(message)
        self.channel.send(pb.BluetoothGATTGetServicesDoneResponse(address=address))

    async def _read(self, address: int, handle: int) -> None:
        value = await self.proxy.links[address].peer.read_value(handle)
        self.channel.send(pb.BluetoothGATTReadResponse(address=address, handle=handle, data=value))

    async def _write(self, address: int, handle: int, data: bytes, response: bool) -> None:
        await self.proxy.links[address].peer.write_value(handle, data, with_response=response)
        if response:
            self.channel.send(pb.BluetoothGATTWriteResponse(address=address, handle=handle))

    async def _notify(self, address: int, handle: int, enable: bool) -> None:
        link = self.proxy.links[address]
        client = link.peer.gatt_client
        old = link.notifying.pop(handle, None)
        if old is not None:
            client.notification_subscribers.get(handle, set()).discard(old)
            client.indication_subscribers.get(handle, set()).discard(old)
        if enable:

            def forward(value: bytes) -> None:
                self.channel.send(
                    pb.BluetoothGATTNotifyDataResponse(address=address, handle=handle, data=value)
                )

            link.notifying[handle] = forward
            client.notification_subscribers.setdefault(handle, set()).add(forward)
            client.indication_subscribers.setdefault(handle, set()).add(forward)
        self.channel.send(pb.BluetoothGATTNotifyResponse(address=address, handle=handle))


@dataclass
class ProxiedWorld:
    """A world file's devices as virtual peripherals, heard by one fake proxy."""

    proxy: FakeProxy
    virtual: VirtualWorld

    @classmethod
    async def start(cls, world: World, **proxy_args: Any) -> ProxiedWorld:
        link = LocalLink()
        virtual = await VirtualWorld(world, link).start()
        proxy = await FakeProxy(link, **proxy_args).start()
        return cls(proxy, virtual)

    async def stop(self) -> None:
        await self.proxy.stop()
        await self.virtual.stop()
