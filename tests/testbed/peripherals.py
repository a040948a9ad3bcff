"""Virtual peripherals: bumble devices on a LocalLink serving the GATT databases of a world file.

Each world device becomes a bumble ``Device`` with its own controller on the link. It advertises
the world's advertising data (extended advertising, so more than 31 bytes fit) and serves a GATT
database laid out like the simulated backend's (no GAP/GATT services, CCCD first, then the 2901
user description, then extra descriptors), so handles are the same on every backend.

World semantics, as the simulated backend implements them: values come from the world's
generators; ``[[devices.adverts]]`` change the advertising data when each entry's time comes;
``echo_to`` sends what was written back as notifications of another characteristic in
``MTU - 3`` byte pieces; ``notify_hz`` notifies generator values periodically while subscribed;
``max_length`` rejects longer writes with ATT Invalid Attribute Value Length; reading a
characteristic without the read property answers Read Not Permitted, writing one without a write
property Write Not Permitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from bumble import att
from bumble.controller import Controller
from bumble.device import AdvertisingEventProperties, AdvertisingParameters, Device
from bumble.device import DeviceConfiguration as BumbleConfig
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    CharacteristicValue,
    Descriptor,
    Service,
)
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from mcp_ble.backends.bumble.advertising import encode
from mcp_ble.backends.simulated.sources import AdvertSchedule, ValueSource
from mcp_ble.backends.simulated.world import USER_DESCRIPTION, World
from mcp_ble.backends.simulated.world import Characteristic as CharSpec
from mcp_ble.backends.simulated.world import Device as DeviceSpec

PROPERTY_FLAGS = {
    "broadcast": Characteristic.Properties.BROADCAST,
    "read": Characteristic.Properties.READ,
    "write-without-response": Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
    "write": Characteristic.Properties.WRITE,
    "notify": Characteristic.Properties.NOTIFY,
    "indicate": Characteristic.Properties.INDICATE,
    "authenticated-signed-writes": Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES,
    "extended-properties": Characteristic.Properties.EXTENDED_PROPERTIES,
}
OPEN = att.Attribute.Permissions.READABLE | att.Attribute.Permissions.WRITEABLE


def _refuse(code: int) -> Any:
    def refuse(*_: Any) -> Any:
        raise att.ATT_Error(code)

    return refuse


class VirtualPeripheral:
    """One world device as a bumble peripheral. Build and ``start`` it inside the running loop."""

    def __init__(self, spec: DeviceSpec, link: LocalLink, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        controller = Controller(spec.name or spec.address, link=link)
        config = BumbleConfig()
        config.name = spec.name or ""
        config.address = Address(spec.address)
        config.gap_service_enabled = False
        config.gatt_service_enabled = False
        self.device = Device(config=config, host=Host(controller, AsyncPipeSink(controller)))
        self.device.gatt_server.max_mtu = spec.mtu
        self.t0 = asyncio.get_running_loop().time()
        self.characteristics: dict[str, list[tuple[Characteristic, CharSpec, ValueSource]]] = {}
        self.notifiers: dict[tuple[int, int], asyncio.Task[None]] = {}
        self.writes = 0
        self._advertising: Any = None
        self.adverts = AdvertSchedule(spec)
        self._adverts_task: asyncio.Task[None] | None = None
        self._build_gatt()

    # ------------------------------------------------------------------ GATT database

    def _build_gatt(self) -> None:
        for svc in self.spec.services:
            chars = [self._characteristic(spec) for spec in svc.characteristics]
            self.device.add_service(Service(svc.uuid, chars))

    def _characteristic(self, spec: CharSpec) -> Characteristic:
        props = Characteristic.Properties(0)
        for name in spec.properties:
            props |= PROPERTY_FLAGS[name]
        source = ValueSource(spec, self.rng)

        def read(connection: Any) -> bytes:
            if "read" not in spec.properties:
                raise att.ATT_Error(att.ATT_READ_NOT_PERMITTED_ERROR)
            return source.sample(self.now())[:512]

        async def write(connection: Any, value: bytes) -> None:
            if "write" not in spec.properties and "write-without-response" not in spec.properties:
                raise att.ATT_Error(att.ATT_WRITE_NOT_PERMITTED_ERROR)
            if len(value) > spec.max_length:
                raise att.ATT_Error(att.ATT_INVALID_ATTRIBUTE_LENGTH_ERROR)
            source.store(bytes(value))
            self.writes += 1
            if spec.echo_to is not None:
                await self._echo(spec.echo_to, bytes(value))

        char = Characteristic(spec.uuid, props, OPEN, CharacteristicValue(read=read, write=write))
        descriptors = []
        if "notify" in spec.properties or "indicate" in spec.properties:
            descriptors.append(
                Descriptor(
                    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                    OPEN,
                    self.device.gatt_server.make_descriptor_value(char),
                )
            )
            char.on(
                Characteristic.EVENT_SUBSCRIPTION,
                lambda bearer, notify, indicate: self._subscription(
                    bearer, char, spec, source, notify or indicate
                ),
            )
        if spec.description is not None:
            text = spec.description.encode()
            descriptors.append(
                Descriptor(
                    USER_DESCRIPTION,
                    OPEN,
                    att.AttributeValue(read=lambda _c: text, write=_refuse(0x03)),
                )
            )
        for extra in spec.descriptors:
            stored = bytearray(extra.value)

            def store(_c: Any, value: bytes, stored: bytearray = stored) -> None:
                stored[:] = value

            descriptors.append(
                Descriptor(
                    extra.uuid,
                    OPEN,
                    att.AttributeValue(
                        read=lambda _c, stored=stored: bytes(stored),
                        write=store if extra.writable else _refuse(0x03),
                    ),
                )
            )
        char.descriptors = descriptors
        self.characteristics.setdefault(spec.uuid, []).append((char, spec, source))
        return char

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    async def _send(
        self, connection: Any, char: Characteristic, spec: CharSpec, data: bytes
    ) -> None:
        if "notify" in spec.properties:
            await self.device.notify_subscriber(connection, char, data)
        else:
            await self.device.indicate_subscriber(connection, char, data)

    async def _echo(self, target_uuid: str, data: bytes) -> None:
        """UART-style loopback: the written bytes come back as notifications of ``echo_to``."""
        for char, spec, _ in self.characteristics.get(target_uuid, []):
            for connection in list(self.device.connections.values()):
                payload = connection.att_mtu - 3
                for i in range(0, len(data), payload):
                    await self._send(connection, char, spec, data[i : i + payload])

    def _subscription(
        self, connection: Any, char: Characteristic, spec: CharSpec, source: Any, on: bool
    ) -> None:
        key = (connection.handle, char.handle)
        old = self.notifiers.pop(key, None)
        if old is not None:
            old.cancel()
        if on and spec.generator is not None and spec.notify_hz > 0:
            task = asyncio.get_running_loop().create_task(
                self._notify_periodically(connection, char, spec, source)
            )
            self.notifiers[key] = task
            connection.on("disconnection", lambda _reason: task.cancel())

    async def _notify_periodically(
        self, connection: Any, char: Characteristic, spec: CharSpec, source: Any
    ) -> None:
        interval = 1.0 / spec.notify_hz
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(interval)
                value = source.sample(self.now())[: connection.att_mtu - 3]
                await self._send(connection, char, spec, value)

    # ------------------------------------------------------------------ lifecycle

    def _advertising_data(self, t: float) -> bytes:
        spec = self.spec
        company, service_data = self.adverts.at(t)
        return encode(
            name=spec.name,
            service_uuids=spec.service_uuids,
            manufacturer_data=company,
            service_data=service_data,
            tx_power=spec.tx_power,
            connectable=spec.connectable,
        )

    async def _advertise_over_time(self) -> None:
        """``[[devices.adverts]]``: put each entry's data on the air when its time comes."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(max(0.0, self.adverts.next_change(self.now()) - self.now()))
                await self._advertising.set_advertising_data(self._advertising_data(self.now()))

    async def start(self) -> None:
        await self.device.power_on()
        spec = self.spec
        data = self._advertising_data(self.now())
        params = AdvertisingParameters(
            advertising_event_properties=AdvertisingEventProperties(
                is_connectable=spec.connectable, is_legacy=False
            ),
            primary_advertising_interval_min=spec.adv_interval_ms,
            primary_advertising_interval_max=spec.adv_interval_ms,
        )
        self._advertising = await self.device.create_advertising_set(
            advertising_parameters=params, advertising_data=data, auto_restart=True
        )
        if self.adverts.changes:
            self._adverts_task = asyncio.get_running_loop().create_task(self._advertise_over_time())

    async def drop_link(self, reason: int = HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR) -> None:
        """The peripheral ends every link it has (as if switched off or out of range)."""
        for connection in list(self.device.connections.values()):
            await connection.disconnect(reason)

    async def stop(self) -> None:
        for task in self.notifiers.values():
            task.cancel()
        if self._adverts_task is not None:
            self._adverts_task.cancel()
        if self._advertising is not None:
            self._advertising.auto_restart = False
            with contextlib.suppress(Exception):
                await self._advertising.stop()
        with contextlib.suppress(Exception):
            await self.drop_link()


class VirtualWorld:
    """All devices of a world on one link."""

    def __init__(self, world: World, link: LocalLink) -> None:
        self.world = world
        self.link = link
        self.peripherals: dict[str, VirtualPeripheral] = {}

    async def start(self) -> VirtualWorld:
        rng = random.Random(self.world.seed)
        for spec in self.world.devices:
            peripheral = VirtualPeripheral(spec, self.link, rng)
            await peripheral.start()
            self.peripherals[spec.address] = peripheral
        return self

    async def drop_link(self, address: str) -> None:
        await self.peripherals[address].drop_link()

    async def stop(self) -> None:
        for peripheral in self.peripherals.values():
            await peripheral.stop()
        # Let in-flight HCI events settle before the loop goes away.
        for _ in range(5):
            await asyncio.sleep(0)
