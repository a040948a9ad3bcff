"""A virtual peripheral in its own process, for the fault suite (tests/backends/test_faults_tcp.py)
and the fleet suite (tests/backends/test_fleet_tcp.py).

Usage: python tests/fault_peripheral.py TRANSPORT[,TRANSPORT...] ADDRESS

It opens an HCI transport (``tcp-client:127.0.0.1:PORT`` of ``bumble.apps.controllers``), serves
bumble's own profiles (heart rate with notifications, battery, device information) plus one
"reboot" characteristic: a write to it is acknowledged, then the peripheral drops the link at once
(what reboot and firmware-update commands do). Each such write is printed as ``write <hex>`` on
stdout, so a test can count what the device really received. The process reopens its transport
when the controllers go away and come back, and advertises again after every disconnection.

With several transports (one per link, each link a radio's) it is one device that several radios
hear: the same address and GATT database on every link. It takes one link: once a central
connects on one, it stops advertising on the others until that link ends or its link goes away.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bumble import gatt, hci
from bumble.core import AdvertisingData
from bumble.device import Device
from bumble.profiles.battery_service import BatteryService
from bumble.profiles.device_information_service import DeviceInformationService
from bumble.profiles.heart_rate_service import HeartRateService
from bumble.transport import open_transport

REBOOT_SERVICE = "6E400001-B5A3-F393-E0A9-E50E24DCCA9E"
REBOOT_CHARACTERISTIC = "6E400002-B5A3-F393-E0A9-E50E24DCCA9E"
NAME = "Fault HR"
TASKS: set[asyncio.Task[None]] = set()


class OneDevice:
    """The device's presence on each link: where it advertises and where it is connected."""

    def __init__(self) -> None:
        self.links: list[Device] = []
        self.connected_on: Device | None = None

    def later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        TASKS.add(task)
        task.add_done_callback(TASKS.discard)

    def join(self, device: Device) -> None:
        self.links.append(device)
        device.on("connection", lambda connection: self._connected(device, connection))

    def leave(self, device: Device) -> None:
        self.links.remove(device)
        if self.connected_on is device:
            self._free(device)

    def _connected(self, device: Device, connection: Any) -> None:
        self.connected_on = device
        connection.on("disconnection", lambda reason: self._ended(device))
        for other in self.links:
            if other is not device:
                self.later(_quiet(other.stop_advertising()))

    def _ended(self, device: Device) -> None:
        if self.connected_on is device:
            self._free(device)

    def _free(self, device: Device) -> None:
        """The link on ``device`` ended: advertise again on the other links (``device`` itself
        starts again on its own: ``auto_restart``)."""
        self.connected_on = None
        for other in self.links:
            if other is not device and not other.is_advertising:
                self.later(_quiet(advertise(other)))


async def _quiet(coro: Any) -> None:
    """Advertising changes on a link that is going away fail: that link no longer matters."""
    try:
        await coro
    except Exception as exc:
        print(f"advertising change failed: {type(exc).__name__}", flush=True)


async def advertise(device: Device) -> None:
    await device.start_advertising(auto_restart=True, advertising_interval_min=20)


PRESENCE = OneDevice()


def build(transport: Any, address: str) -> tuple[Device, HeartRateService]:
    device = Device.with_hci(NAME, hci.Address(address), transport.source, transport.sink)
    heart_rate = HeartRateService(
        read_heart_rate_measurement=lambda _: HeartRateService.HeartRateMeasurement(
            heart_rate=72, sensor_contact_detected=True
        ),
        body_sensor_location=HeartRateService.BodySensorLocation.WRIST,
    )

    def on_reboot(connection: Any, value: bytes) -> None:
        print(f"write {bytes(value).hex()}", flush=True)
        loop = asyncio.get_running_loop()

        def drop() -> None:
            # The ATT write response goes out when this handler returns; the link drops right
            # after it, on the next turn of the loop.
            task = loop.create_task(
                connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
            )
            TASKS.add(task)
            task.add_done_callback(TASKS.discard)

        loop.call_soon(drop)

    reboot = gatt.Service(
        REBOOT_SERVICE,
        [
            gatt.Characteristic(
                REBOOT_CHARACTERISTIC,
                gatt.Characteristic.Properties.WRITE,
                gatt.Characteristic.WRITEABLE,
                gatt.CharacteristicValue(write=on_reboot),
            )
        ],
    )
    device.add_services(
        [
            heart_rate,
            BatteryService(read_battery_level=lambda _: 87),
            DeviceInformationService(manufacturer_name="mcp-ble tests", model_number="HR-1"),
            reboot,
        ]
    )
    device.advertising_data = bytes(
        AdvertisingData(
            [
                (AdvertisingData.FLAGS, bytes([0x06])),
                (AdvertisingData.COMPLETE_LOCAL_NAME, NAME.encode()),
                (AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, b"\x0d\x18"),
            ]
        )
    )
    return device, heart_rate


async def serve(transport_name: str, address: str) -> None:
    """Serve until the transport closes; then return so the caller opens it again."""
    transport = await open_transport(transport_name)
    device: Device | None = None
    try:
        device, heart_rate = build(transport, address)
        await device.power_on()
        PRESENCE.join(device)
        if PRESENCE.connected_on is None:
            await advertise(device)
        print("advertising", flush=True)
        beat = 0
        while not transport.source.terminated.done():
            await asyncio.sleep(0.2)
            beat += 1
            if device.connections:
                await device.notify_subscribers(
                    heart_rate.heart_rate_measurement_characteristic,
                    HeartRateService.HeartRateMeasurement(
                        heart_rate=60 + beat % 40, sensor_contact_detected=True
                    ),
                )
    finally:
        if device is not None and device in PRESENCE.links:
            PRESENCE.leave(device)
        await transport.close()


async def keep_serving(transport_name: str, address: str) -> None:
    while True:
        try:
            await serve(transport_name, address)
        except Exception as exc:
            print(f"transport down: {type(exc).__name__}: {exc}", flush=True)
        await asyncio.sleep(0.2)


async def main(transport_names: str, address: str) -> None:
    await asyncio.gather(*(keep_serving(t, address) for t in transport_names.split(",")))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
