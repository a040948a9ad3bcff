"""The ``replay`` backend: plays back a recorded session from a JSON file.

A recording lists advertisements (``t`` seconds after a scan starts), and per device its GATT
services; each characteristic has the values successive reads return (the last one repeats) and
the notifications it sends after a subscribe (``t`` seconds after it). Time runs ``speed`` times
faster than the wall clock, on the backend's own clock (``now``/``sleep``), so mcp-ble measures
durations in recorded seconds. Writes are accepted and kept in ``written``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.backend import Backend, NotifyCallback
from mcp_ble.core.errors import BackendUnavailable, DeviceNotFound, InvalidInput, NotConnected
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import (
    Advertisement,
    BackendInfo,
    GattCharacteristic,
    GattService,
    ScanFilter,
)
from mcp_ble.core.traits import BackendTraits


class ReplaySettings(BaseModel):
    """``[backends.replay]``"""

    model_config = ConfigDict(extra="forbid")

    # every backend's section is validated whichever backend runs: no required fields
    recording: Path | None = Field(None, description="the recorded session (JSON)")
    speed: float = Field(1.0, gt=0, le=10_000, description="playback speed")


def _full_uuid(uuid: str) -> str:
    uuid = uuid.lower()
    return f"0000{uuid}-0000-1000-8000-00805f9b34fb" if len(uuid) == 4 else uuid


class ReplayBackend(Backend):
    def __init__(self, recording: dict[str, Any], speed: float, source: str) -> None:
        self.recording = recording
        self.speed = speed
        self.source = source
        self.connected: set[str] = set()
        self.reads: dict[tuple[str, int], int] = {}
        self.written: list[tuple[str, int, bytes]] = []
        self.streams: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._t0 = time.monotonic()

    # the backend's clock: recorded seconds
    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    async def sleep_background(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    def info(self) -> BackendInfo:
        return BackendInfo("replay", simulated=True, details={"recording": self.source})

    async def stop(self) -> None:
        for task in self.streams.values():
            task.cancel()
        self.streams.clear()
        self.connected.clear()

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        start = self.now()
        for adv in sorted(self.recording["advertisements"], key=lambda a: a["t"]):
            if adv["t"] > duration_s:
                break
            wait = start + adv["t"] - self.now()
            if wait > 0:
                await self.sleep(wait)
            yield Advertisement(
                address=adv["address"],
                rssi=adv["rssi"],
                name=adv.get("name"),
                service_uuids=tuple(_full_uuid(u) for u in adv.get("services", ())),
            )
        remaining = start + duration_s - self.now()
        if remaining > 0:
            await self.sleep(remaining)

    def _device(self, address: str) -> dict[str, Any]:
        device = self.recording["devices"].get(address)
        if device is None:
            raise DeviceNotFound(
                f"{address} is not in the recording {self.source}", "scan to see its devices"
            )
        return device

    def _characteristic(self, address: str, handle: int) -> dict[str, Any]:
        if address not in self.connected:
            raise NotConnected(f"{address} is not connected", "connect first")
        for service in self._device(address)["services"]:
            for char in service["characteristics"]:
                if char["handle"] == handle:
                    return char
        raise InvalidInput(f"{address} has no characteristic at handle {handle}")

    async def connect(self, address: str, timeout_s: float) -> None:
        self._device(address)
        await self.sleep(0.05)  # a recorded connection takes this long
        self.connected.add(address)

    async def disconnect(self, address: str) -> None:
        self.connected.discard(address)
        for key in [k for k in self.streams if k[0] == address]:
            self.streams.pop(key).cancel()

    async def discover(self, address: str) -> list[GattService]:
        services = []
        for s in self._device(address)["services"]:
            chars = [
                GattCharacteristic(
                    _full_uuid(c["uuid"]),
                    c["handle"],
                    tuple(c["properties"]),
                    [],
                    _full_uuid(s["uuid"]),
                )
                for c in s["characteristics"]
            ]
            services.append(GattService(_full_uuid(s["uuid"]), s["handle"], chars))
        return services

    def mtu(self, address: str) -> int:
        return int(self._device(address).get("mtu", 23))

    async def read(self, address: str, handle: int) -> bytes:
        values = self._characteristic(address, handle)["reads"]
        i = self.reads.get((address, handle), 0)
        self.reads[(address, handle)] = i + 1
        return bytes.fromhex(values[min(i, len(values) - 1)])

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        self._characteristic(address, handle)
        self.written.append((address, handle, data))

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        raise InvalidInput("the recording has no descriptors")

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        raise InvalidInput("the recording has no descriptors")

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        notifications = self._characteristic(address, handle).get("notifications", [])

        async def play() -> None:
            start = self.now()
            for item in notifications:
                wait = start + item["t"] - self.now()
                if wait > 0:
                    await self.sleep(wait)
                callback(bytes.fromhex(item["value"]))

        self.streams[(address, handle)] = asyncio.get_running_loop().create_task(play())

    async def stop_notify(self, address: str, handle: int) -> None:
        task = self.streams.pop((address, handle), None)
        if task is not None:
            task.cancel()


def _create(settings: ReplaySettings, backends: Any) -> ReplayBackend:
    if settings.recording is None:
        raise BackendUnavailable(
            "the replay backend has no recording to play",
            "set backends.replay.recording to a JSON recording",
        )
    try:
        recording = json.loads(settings.recording.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(
            f"cannot read the recording {settings.recording}: {exc}",
            "set backends.replay.recording to a JSON recording",
        ) from None
    return ReplayBackend(recording, settings.speed, str(settings.recording))


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register(
        "replay",
        _create,
        settings=ReplaySettings,
        description="plays back a recorded session",
        traits=BackendTraits(simulated=True),
    )
