"""The simulated backend: a world of virtual devices behind the same contract as a radio."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mcp_ble.core.backend import Backend, NotifyCallback
from mcp_ble.core.errors import (
    BleTimeout,
    ConnectionFailed,
    DeviceNotFound,
    GattError,
    NotConnected,
)
from mcp_ble.core.models import (
    Advertisement,
    BackendInfo,
    GattCharacteristic,
    GattDescriptor,
    GattService,
    ScanFilter,
)

from .world import CCCD, USER_DESCRIPTION, Characteristic, Device, ValueSource, World

#: Two connection events after the connect request, at a typical 30 ms interval.
CONNECT_SETUP_S = 0.06


@dataclass
class SimCharacteristic:
    spec: Characteristic
    handle: int
    source: ValueSource
    cccd_handle: int | None
    descriptor_values: dict[int, bytearray] = field(default_factory=dict)
    descriptor_writable: dict[int, bool] = field(default_factory=dict)


@dataclass
class SimDevice:
    spec: Device
    services: list[GattService]
    chars: dict[int, SimCharacteristic]
    descriptor_owner: dict[int, SimCharacteristic]
    connected: bool = False
    mtu: int = 23
    subscribers: dict[int, NotifyCallback] = field(default_factory=dict)
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)


def build_gatt(
    device: Device, rng: random.Random
) -> tuple[list[GattService], dict[int, SimCharacteristic], dict[int, SimCharacteristic]]:
    """Lay out the device's GATT database with handles as a real server would:
    service declaration, then per characteristic a declaration, the value, its descriptors."""
    services: list[GattService] = []
    chars: dict[int, SimCharacteristic] = {}
    owners: dict[int, SimCharacteristic] = {}
    handle = 0
    for svc in device.services:
        handle += 1
        service = GattService(svc.uuid, handle)
        for spec in svc.characteristics:
            handle += 2  # declaration, then value
            value_handle = handle
            sim = SimCharacteristic(spec, value_handle, ValueSource(spec, rng), None)
            descriptors: list[GattDescriptor] = []
            if "notify" in spec.properties or "indicate" in spec.properties:
                handle += 1
                sim.cccd_handle = handle
                sim.descriptor_values[handle] = bytearray(2)
                sim.descriptor_writable[handle] = True
                descriptors.append(GattDescriptor(CCCD, handle))
            if spec.description is not None:
                handle += 1
                sim.descriptor_values[handle] = bytearray(spec.description.encode())
                sim.descriptor_writable[handle] = False
                descriptors.append(GattDescriptor(USER_DESCRIPTION, handle))
            for extra in spec.descriptors:
                handle += 1
                sim.descriptor_values[handle] = bytearray(extra.value)
                sim.descriptor_writable[handle] = extra.writable
                descriptors.append(GattDescriptor(extra.uuid, handle))
            for desc in descriptors:
                owners[desc.handle] = sim
            chars[value_handle] = sim
            service.characteristics.append(
                GattCharacteristic(
                    spec.uuid, value_handle, tuple(spec.properties), descriptors, svc.uuid
                )
            )
        services.append(service)
    return services, chars, owners


class SimulatedBackend(Backend):
    """Virtual devices from a world file. ``time_scale`` stretches every delay (1 = real time)."""

    def __init__(self, world: World, time_scale: float = 1.0, max_mtu: int = 517) -> None:
        self.world = world
        self.time_scale = time_scale
        self.max_mtu = max_mtu
        self.rng = random.Random(world.seed)
        self.devices: dict[str, SimDevice] = {}
        for spec in world.devices:
            services, chars, owners = build_gatt(spec, self.rng)
            self.devices[spec.address] = SimDevice(spec, services, chars, owners)
        self._t0 = 0.0

    def info(self) -> BackendInfo:
        return BackendInfo(
            "simulated",
            simulated=True,
            details={
                "world": self.world.name,
                "devices": str(len(self.devices)),
                "time_scale": f"{self.time_scale:g}",
            },
        )

    async def start(self) -> None:
        self._t0 = asyncio.get_running_loop().time()

    async def stop(self) -> None:
        for device in self.devices.values():
            self._cancel_tasks(device)
            device.connected = False

    def now(self) -> float:
        """Simulated seconds since start."""
        elapsed = asyncio.get_running_loop().time() - self._t0
        return elapsed / self.time_scale if self.time_scale > 0 else elapsed

    async def _sleep(self, simulated_s: float) -> None:
        await asyncio.sleep(simulated_s * self.time_scale)

    # ------------------------------------------------------------------ discovery

    def _advertisement(self, device: Device) -> Advertisement:
        return Advertisement(
            address=device.address,
            rssi=max(-127, min(20, round(device.rssi + self.rng.gauss(0, 2)))),
            name=device.name,
            tx_power=device.tx_power,
            connectable=device.connectable,
            service_uuids=tuple(device.service_uuids),
            manufacturer_data=device.company_data(),
            service_data=dict(device.service_data),
        )

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        """Every device advertises at its interval plus the random 0-10 ms advDelay."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        queue: list[tuple[float, int, Device]] = []
        for i, sim in enumerate(self.devices.values()):
            first = self.rng.uniform(0, sim.spec.adv_interval_ms / 1000)
            queue.append((first, i, sim.spec))
        heapq.heapify(queue)
        while queue:
            at, i, spec = heapq.heappop(queue)
            if at > duration_s:
                break
            delay = start + at * self.time_scale - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
            sim = self.devices.get(spec.address)
            if sim is not None and not sim.connected:  # a connected peripheral stops advertising
                yield self._advertisement(spec)
            nxt = at + spec.adv_interval_ms / 1000 + self.rng.uniform(0, 0.010)
            heapq.heappush(queue, (nxt, i, spec))
        remaining = start + duration_s * self.time_scale - loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)

    # ------------------------------------------------------------------ connection

    def _device(self, address: str) -> SimDevice:
        device = self.devices.get(address)
        if device is None:
            raise DeviceNotFound(
                f"{address} is not in the simulated world '{self.world.name}'",
                "run ble_scan to list the devices that are advertising",
            )
        return device

    def _linked(self, address: str) -> SimDevice:
        device = self._device(address)
        if not device.connected:
            raise NotConnected(f"{address} is not connected", "call ble_connect first")
        return device

    async def connect(self, address: str, timeout_s: float) -> None:
        device = self._device(address)
        if device.connected:
            return
        if not device.spec.connectable:
            raise ConnectionFailed(
                f"{address} does not accept connections", "it advertises as not connectable"
            )
        # The central waits for the next connectable advertisement, then two connection events.
        wait = self.rng.uniform(0, device.spec.adv_interval_ms / 1000) + CONNECT_SETUP_S
        if wait * self.time_scale > timeout_s:
            await asyncio.sleep(timeout_s)
            raise BleTimeout(f"Connecting to {address} timed out after {timeout_s:.1f} s")
        await self._sleep(wait)
        if self.rng.random() < device.spec.faults.connect_failure_rate:
            raise ConnectionFailed(
                f"Connecting to {address} failed: connection aborted by interference",
                "retry; move closer to the device if it keeps failing",
            )
        device.connected = True
        device.mtu = min(device.spec.mtu, self.max_mtu)

    async def disconnect(self, address: str) -> None:
        device = self.devices.get(address)
        if device is None or not device.connected:
            return
        self._reset_link(device)

    def _reset_link(self, device: SimDevice) -> None:
        self._cancel_tasks(device)
        device.connected = False
        device.subscribers.clear()
        for sim in device.chars.values():
            if sim.cccd_handle is not None:
                sim.descriptor_values[sim.cccd_handle][:] = b"\x00\x00"

    def _cancel_tasks(self, device: SimDevice) -> None:
        for task in device.tasks.values():
            task.cancel()
        device.tasks.clear()

    def drop_link(self, address: str, reason: str = "remote user terminated connection") -> None:
        """The peripheral ends the link (it powered off, or walked out of range)."""
        device = self._device(address)
        if device.connected:
            self._reset_link(device)
            self.on_disconnect(address, reason)

    def mtu(self, address: str) -> int:
        return self._linked(address).mtu

    async def discover(self, address: str) -> list[GattService]:
        device = self._linked(address)
        await asyncio.sleep(0)
        return [
            GattService(
                s.uuid,
                s.handle,
                [
                    GattCharacteristic(
                        c.uuid, c.handle, c.properties, list(c.descriptors), c.service_uuid
                    )
                    for c in s.characteristics
                ],
            )
            for s in device.services
        ]

    # ------------------------------------------------------------------ transfer

    def _char(self, device: SimDevice, handle: int) -> SimCharacteristic:
        sim = device.chars.get(handle)
        if sim is None:
            raise GattError(0x01, "request")
        return sim

    async def read(self, address: str, handle: int) -> bytes:
        device = self._linked(address)
        sim = self._char(device, handle)
        await asyncio.sleep(0)
        if "read" not in sim.spec.properties:
            raise GattError(0x02, "read")
        return sim.source.sample(self.now())[:512]

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        device = self._linked(address)
        sim = self._char(device, handle)
        await asyncio.sleep(0)
        needed = "write" if response else "write-without-response"
        if needed not in sim.spec.properties:
            raise GattError(0x03, "write")
        if len(data) > sim.spec.max_length:
            raise GattError(0x0D, "write")
        sim.source.store(bytes(data))
        if sim.spec.echo_to is not None:
            self._echo(device, sim.spec.echo_to, bytes(data))

    def _echo(self, device: SimDevice, target_uuid: str, data: bytes) -> None:
        """A UART-style loopback: what was written comes back as notifications."""
        payload = device.mtu - 3
        for handle, sim in device.chars.items():
            if sim.spec.uuid == target_uuid:
                callback = device.subscribers.get(handle)
                if callback is not None:
                    for i in range(0, len(data), payload):
                        callback(data[i : i + payload])

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        device = self._linked(address)
        sim = device.descriptor_owner.get(handle)
        if sim is None:
            raise GattError(0x01, "descriptor read")
        await asyncio.sleep(0)
        return bytes(sim.descriptor_values[handle])

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        device = self._linked(address)
        sim = device.descriptor_owner.get(handle)
        if sim is None:
            raise GattError(0x01, "descriptor write")
        if not sim.descriptor_writable[handle]:
            raise GattError(0x03, "descriptor write")
        if handle == sim.cccd_handle and len(data) != 2:
            raise GattError(0x0D, "descriptor write")
        await asyncio.sleep(0)
        sim.descriptor_values[handle][:] = data

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        device = self._linked(address)
        sim = self._char(device, handle)
        if sim.cccd_handle is None:
            raise GattError(0x03, "subscription")
        enable = b"\x01\x00" if "notify" in sim.spec.properties else b"\x02\x00"
        sim.descriptor_values[sim.cccd_handle][:] = enable
        device.subscribers[handle] = callback
        if sim.spec.generator is not None and sim.spec.notify_hz > 0:
            old = device.tasks.pop(handle, None)
            if old:
                old.cancel()
            device.tasks[handle] = asyncio.get_running_loop().create_task(
                self._notifier(device, sim)
            )

    async def _notifier(self, device: SimDevice, sim: SimCharacteristic) -> None:
        interval = 1.0 / sim.spec.notify_hz
        with contextlib.suppress(asyncio.CancelledError):
            while device.connected:
                await self._sleep(interval)
                callback = device.subscribers.get(sim.handle)
                if callback is None:
                    return
                callback(sim.source.sample(self.now())[: device.mtu - 3])

    async def stop_notify(self, address: str, handle: int) -> None:
        device = self._linked(address)
        sim = self._char(device, handle)
        device.subscribers.pop(handle, None)
        task = device.tasks.pop(handle, None)
        if task is not None:
            task.cancel()
        if sim.cccd_handle is not None:
            sim.descriptor_values[sim.cccd_handle][:] = b"\x00\x00"
