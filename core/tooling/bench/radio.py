"""The radio groups, in simulated time beside their ideals: discovery, connection, transfer,
the MTU sweep and the load test."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ....backends.simulated import theory
from ...errors import BleError
from ...models import ScanFilter
from .base import SuiteBase
from .results import Result, percentile, rate_and_latency, stats
from .world import MTU_CANDIDATES, MTU_TARGET, TARGET, TARGET_NAME, load_address

if TYPE_CHECKING:
    from ...app import BleApp


class RadioGroups(SuiteBase):
    async def discovery(self) -> None:
        p = self.params
        self.progress.step("discovery: scans until the target is heard")
        async with self.app() as app:
            radio = self.backend(app)
            times, misses = [], 0
            for _ in range(p.runs):
                # What ble_scan(name=..., limit=1) does: the scan ends when the device is heard.
                start = radio.now()
                outcome = await app.scan(30.0, ScanFilter(name=TARGET_NAME), limit=1)
                times.append(radio.now() - start)
                misses += not outcome.devices
            self.progress.step("discovery: a default scan of the whole world")
            start = radio.now()
            outcome = await app.scan(None, ScanFilter())
            default_scan = radio.now() - start
        link = radio.world.link
        target = radio.devices[TARGET]
        q = theory.hear_probability(
            target.spec.rssi,
            target.spec.rssi_noise_db,
            link.sensitivity_dbm,
            target.params.loss_rate,
        )
        ideal = theory.discovery_time(
            target.adv_interval, link.scan_interval_ms / 1000, link.scan_window_ms / 1000, q
        )
        self.results += stats("discovery_time", times, "s", ideal)
        self.results.append(Result("discovery_misses", misses, "runs"))
        self.results.append(Result("scan_default_duration_s", default_scan, "s"))
        self.results.append(Result("scan_default_devices_found", outcome.matched, "devices"))

    async def connection(self) -> None:
        p = self.params
        self.progress.step("connection: connect / disconnect")
        async with self.app() as app:
            radio = self.backend(app)
            await self.discovered(app, TARGET)
            times = []
            for _ in range(p.runs):
                start = radio.now()
                await app.connect(TARGET)
                times.append(radio.now() - start)
                await app.disconnect(TARGET)
        link = radio.world.link
        target = radio.devices[TARGET]
        ideal = theory.connection_time(
            target.adv_interval,
            target.params,
            link.connect_scan_interval_ms / 1000,
            link.connect_scan_window_ms / 1000,
        )
        self.results += stats("connection_time", times, "s", ideal)

    # ------------------------------------------------------------ transfer

    async def linked(self, app: BleApp, address: str) -> theory.LinkParams:
        """Connect to ``address`` with its GATT discovered; its link parameters with the MTU
        the exchange settled on."""
        radio = self.backend(app)
        await self.discovered(app, address)
        await app.connect(address)
        await app.gatt(address)
        link = radio.link_params(address)
        return theory.LinkParams(**{**link.__dict__, "mtu": radio.mtu(address)})

    async def transfer(self) -> None:
        p = self.params
        async with self.app() as app:
            radio = self.backend(app)
            link = await self.linked(app, TARGET)
            payload = link.mtu - 3

            self.progress.step(f"transfer: {p.stream_bytes} B written without response")
            data = bytes(p.stream_bytes)
            start = radio.now()
            calls = []
            for offset in range(0, len(data), payload):
                before = radio.now()
                await app.write(TARGET, "fff1", data[offset : offset + payload], "false")
                calls.append(radio.now() - before)
            took = await radio.drain(TARGET) - start
            self.results.append(
                Result(
                    "write_without_response_bytes_per_s",
                    len(data) / took,
                    "B/s",
                    theory.stream_throughput(link),
                )
            )
            self.results.append(
                Result("write_without_response_call_p95_s", percentile(calls, 95), "s")
            )

            # MTU - 3 is always measured: it gives the headline write_with_response figure.
            for size in sorted({*p.transfer_sizes, payload}):
                self.progress.step(f"transfer: writes with response and reads of {size} B")
                value = (bytes(range(256)) * 2)[:size]

                def write(v: bytes = value) -> Awaitable[Any]:
                    return app.write(TARGET, "fff1", v, "true")

                name = "write_with_response" + ("" if size == payload else f"_{size}B")
                self.results += rate_and_latency(
                    name,
                    size,
                    await self._repeat(radio, p.transfer_ops, write),
                    theory.write_with_response_throughput(link, size),
                    theory.write_with_response_time(link, size),
                )
                self.results += rate_and_latency(
                    f"read_{size}B",
                    size,
                    await self._repeat(radio, p.transfer_ops, lambda: app.read(TARGET, "fff1")),
                    theory.read_throughput(link, size),
                    theory.read_time(link, size),
                )

            self.progress.step(f"transfer: notifications for {p.notify_window_s:g} s")
            sub, _ = await app.subscribe(TARGET, "fff2")
            received = sub.received
            start = radio.now()
            await radio.clock.sleep(p.notify_window_s)
            count = sub.received - received
            self.results.append(
                Result(
                    "notify_bytes_per_s",
                    count * payload / (radio.now() - start),
                    "B/s",
                    theory.stream_throughput(link),
                )
            )
            await app.unsubscribe(TARGET, "fff2")

    async def mtu(self) -> None:
        """MTU optimization: stream the same bytes at each candidate MTU (the
        adapter's limit; the device accepts 517) and keep the fastest."""
        p = self.params
        sim = self.loaded.settings.backend_settings("simulated")
        adapter_mtu = sim.max_mtu
        nbytes = p.stream_bytes
        best: tuple[float, int] | None = None
        self.progress.step(f"mtu: {nbytes} B written without response at MTU {MTU_CANDIDATES}")
        try:
            for mtu in MTU_CANDIDATES:
                sim.max_mtu = mtu
                async with self.app() as app:
                    radio = self.backend(app)
                    link = await self.linked(app, MTU_TARGET)
                    payload = link.payload
                    data = bytes(nbytes)
                    start = radio.now()
                    for offset in range(0, nbytes, payload):
                        await app.write(
                            MTU_TARGET, "fff1", data[offset : offset + payload], "false"
                        )
                    rate = nbytes / (await radio.drain(MTU_TARGET) - start)
                    self.results.append(
                        Result(
                            f"mtu_{mtu}_write_without_response_bytes_per_s",
                            rate,
                            "B/s",
                            theory.stream_throughput(link),
                        )
                    )
                    if best is None or rate > best[0]:
                        best = (rate, mtu)
                    if mtu == MTU_CANDIDATES[-1]:  # what the link got (the mtu plugin's choice)
                        self.results.append(Result(f"mtu_{mtu}_link_mtu", link.mtu, "bytes"))
        finally:
            sim.max_mtu = adapter_mtu
        assert best is not None
        self.results.append(Result("mtu_best", best[1], "bytes"))

    # ------------------------------------------------------------ load test

    async def load(self) -> None:
        p = self.params
        self.progress.step(
            f"load: {p.operation_count} operations on {p.device_count} devices, "
            f"{p.concurrent_operations} at a time"
        )
        rng = random.Random(p.seed)
        devices = [load_address(i) for i in range(1, p.device_count + 1)]
        operations = [
            (rng.choice(devices), "read" if rng.random() < p.read_ratio else "write")
            for _ in range(p.operation_count)
        ]
        latencies: list[float] = []
        failures: dict[str, int] = {}
        async with self.app() as app:
            radio = self.backend(app)
            await self.discovered(app, *devices)

            async def execute(address: str, kind: str) -> None:
                start = radio.now()
                try:
                    await app.connect(address)
                    if kind == "read":
                        await app.read(address, "fff1")
                    else:
                        await app.write(address, "fff1", bytes(8), "true")
                except BleError as exc:
                    failures[exc.code] = failures.get(exc.code, 0) + 1
                else:
                    latencies.append(radio.now() - start)

            began = radio.now()
            for i in range(0, len(operations), p.concurrent_operations):
                batch = operations[i : i + p.concurrent_operations]
                await asyncio.gather(*(execute(a, k) for a, k in batch))
            elapsed = radio.now() - began
        ok = len(latencies)
        self.results.append(Result("load_success_rate", 100 * ok / len(operations), "%"))
        self.results.append(Result("load_operations_per_s", ok / elapsed if elapsed else 0, "op/s"))
        if latencies:
            for q in (50, 95, 99):
                self.results.append(Result(f"load_latency_p{q}_s", percentile(latencies, q), "s"))
        for code, count in sorted(failures.items()):
            self.results.append(Result(f"load_failures_{code}", count, "ops"))
