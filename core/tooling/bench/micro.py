"""Micro-benchmarks of the server's own cost, in real time: advertisement and notification
ingestion, memory per tracked device, and the MCP overhead of ``ble_read``."""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...errors import BleError
from ...models import Advertisement, ScanFilter
from .base import SuiteBase
from .results import Result
from .world import TARGET

if TYPE_CHECKING:
    from ...app import BleApp


class MicroGroup(SuiteBase):
    async def micro(self) -> None:
        self.progress.step("micro: advertisement ingestion")
        await self.adv_ingest()
        self.progress.step("micro: memory per tracked device")
        await self.tracked_memory()
        self.progress.step("micro: notification ingestion")
        await self.notify_ingest()
        self.progress.step("micro: MCP tool-call overhead")
        await self.mcp_overhead()

    @staticmethod
    def crowd(count: int, devices: int, seed: int) -> Iterator[Advertisement]:
        """Advertisements as a busy room delivers them: ``devices`` advertisers reporting in
        turn, each report a new object (as backends build them), payloads equal to the previous
        report's except for an occasional changed value; RSSI varies."""
        rng = random.Random(seed)
        rssi = [rng.randint(-95, -40) for _ in range(devices)]
        uuids = ["0000fff0-0000-1000-8000-00805f9b34fb"]
        for n in range(count):
            i = n % devices
            counter = (n // devices) // 8  # the payload changes every 8th report
            yield Advertisement(
                f"02:00:00:{i >> 16 & 0xFF:02X}:{i >> 8 & 0xFF:02X}:{i & 0xFF:02X}",
                rssi[i] + (n & 3),
                f"Tag {i}",
                None,
                True,
                tuple(uuids),
                {0x0059: bytes((i & 0xFF, counter & 0xFF, 1, 2, 3, 4, 5, 6))},
                {},
            )

    async def _replayed_scan(self, app: BleApp, advs: Iterator[Advertisement]) -> float:
        """Real seconds for the discovery pipeline to take in ``advs`` (one app.scan)."""
        radio = self.backend(app)
        radio.replay(advs)
        start = time.perf_counter()
        await app.scan(300.0, ScanFilter())
        return time.perf_counter() - start

    async def adv_ingest(self) -> None:
        p = self.params
        advs = list(self.crowd(p.adv_count, p.adv_devices, p.seed))
        async with self.app() as app:
            await self._replayed_scan(app, iter(advs[: p.adv_devices]))  # warm the tracker
            took = await self._replayed_scan(app, iter(advs))
        self.results.append(Result("adv_ingest_per_s", len(advs) / took, "adv/s", simulated=False))

    async def tracked_memory(self) -> None:
        p = self.params
        async with self.app() as app:
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                await self._replayed_scan(
                    app, self.crowd(p.tracked_devices, p.tracked_devices, p.seed)
                )
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            tracked = len(app.tracker)
        self.results.append(
            Result("bytes_per_tracked_device", (after - before) / tracked, "B", simulated=False)
        )
        self.results.append(Result("tracked_devices", tracked, "devices", simulated=False))

    async def notify_ingest(self) -> None:
        p = self.params
        payloads = [bytes((i & 0xFF, i >> 8 & 0xFF)) * 10 for i in range(4096)]
        async with self.app() as app:
            radio = self.backend(app)
            await self.discovered(app, TARGET)
            await app.connect(TARGET)
            sub, _ = await app.subscribe(TARGET, "fff2")
            handle = sub.handle
            deliver = radio.devices[TARGET].subscribers[handle]  # what the backend calls
            mask = len(payloads) - 1
            start = time.perf_counter()
            for i in range(p.notify_count):
                deliver(payloads[i & mask])
            took = time.perf_counter() - start
            # Bounded memory: the buffer holds its capacity, however many arrived.
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for i in range(p.notify_count // 4):
                    deliver(bytes(payloads[i & mask]))
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            buffered = len(sub.items)
        self.results += [
            Result("notify_ingest_per_s", p.notify_count / took, "notif/s", simulated=False),
            Result("notify_buffered", buffered, "notifications", simulated=False),
            Result("notify_memory_growth_bytes", max(0, grown), "B", simulated=False),
        ]

    async def mcp_overhead(self) -> None:
        from mcp.client import Client
        from pydantic import BaseModel

        from ...server import build_server

        p = self.params

        class Trivial(BaseModel):
            address: str
            characteristic: str

        class FlatRead(BaseModel):
            address: str
            uuid: str
            handle: int
            hex: str

        async def bench_trivial(address: str, characteristic: str) -> Trivial:
            """Does nothing: the floor of an MCP tool call with the same arguments."""
            return Trivial(address=address, characteristic=characteristic)

        async def bench_flat_read(address: str, characteristic: str) -> FlatRead:
            """ble_read's work (the core and the radio) with a flat, non-nullable output: tells
            the cost of the read path apart from the cost of ble_read's richer result."""
            done = await app.read(address, characteristic)
            char = done.characteristic
            return FlatRead(
                address=address, uuid=char.uuid, handle=char.handle, hex=done.data.hex()
            )

        # Real types, not the strings ``from __future__ import annotations`` leaves: the SDK
        # cannot evaluate a name local to this function.
        bench_trivial.__annotations__ = {"address": str, "characteristic": str, "return": Trivial}
        bench_flat_read.__annotations__ = {
            "address": str,
            "characteristic": str,
            "return": FlatRead,
        }

        async with self.app() as app:
            await self.discovered(app, TARGET)
            await app.connect(TARGET)
            await app.gatt(TARGET)
            server = build_server(app, manage_app=False)
            server.add_tool(bench_trivial)
            server.add_tool(bench_flat_read)
            args = {"address": TARGET, "characteristic": "fff1"}
            tools = ("ble_read", "bench_trivial", "bench_flat_read")
            samples: dict[str, list[float]] = {name: [] for name in tools}
            async with Client(server) as client:
                for _ in range(30):
                    for name in tools:
                        await client.call_tool(name, args)
                for _ in range(p.mcp_calls):
                    for name in tools:  # interleaved, so drifts of the machine hit all alike
                        start = time.perf_counter()
                        result = await client.call_tool(name, args)
                        samples[name].append(time.perf_counter() - start)
                        if result.is_error:
                            raise BleError(f"{name} failed in the benchmark: {result.content}")
        read, trivial, flat = (statistics.median(samples[name]) for name in tools)
        self.results += [
            Result("mcp_read_overhead_ratio", read / trivial, "x", simulated=False),
            Result("mcp_read_call_median_s", read, "s", simulated=False),
            Result("mcp_trivial_call_median_s", trivial, "s", simulated=False),
            Result("mcp_flat_read_overhead_ratio", flat / trivial, "x", simulated=False),
        ]
