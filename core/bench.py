"""``mcp-ble bench``: discovery, connection, transfer and load benchmarks on the simulator.

The suite runs the server's own code (``BleApp``, the enabled plugins, the MCP layer) on the
simulated backend with a virtual clock, over a benchmark world written for the run:

- discovery and connection benchmarks: 10 runs each, min / median / mean / max,
- transfer: throughput and latency of reads, writes with and without response and notifications,
  at several payload sizes,
- a load test: ``deviceCount`` devices, ``operationCount`` operations in batches of
  ``concurrentOperations``, a read/write mix; success rate and latency percentiles,
- micro-benchmarks of the server's own cost in real time: advertisement ingestion through the
  discovery pipeline, notification ingestion into subscription buffers, memory per tracked
  device, and the MCP overhead of ``ble_read`` against a trivial tool on the same server.

Radio figures are simulated time (``simulated: true``) and come with their ideal from
:mod:`mcp_ble.core.theory` and the ratio measured / ideal; micro-benchmarks are real time and have
no ideal (their targets are printed instead). ``--compare A.toml B.toml`` runs the same suite under
two settings files (two plugin sets) and prints B / A for every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# Only the standard library at import time: the CLI builds its parser (``--help``) from here.
from . import theory
from .errors import BleError, ConfigError
from .models import Advertisement, ScanFilter

if TYPE_CHECKING:
    from .app import BleApp

TARGET = "BE:0C:00:00:00:01"
TARGET_NAME = "Bench Target"
MTU_TARGET = "BE:0C:00:00:00:02"
#: Candidate ATT MTUs: 23 is the default, 247 fills one 251-byte LL packet with Data Length
#: Extension, and 517 carries a 512-byte attribute (Core spec Vol 3, Part F, 3.2.9) in one PDU.
MTU_CANDIDATES = (23, 185, 244, 247, 517)
GROUPS = (
    "discovery",
    "connection",
    "transfer",
    "mtu",
    "load",
    "micro",
    "tokens",
    "soak",
    "retry",
)
#: Groups that run only when named with --only (the soak takes a minute or two).
OPT_IN = ("soak", "retry")

#: (comparison, bound): the project's targets for the server's own cost.
TARGETS: dict[str, tuple[str, float]] = {
    "adv_ingest_per_s": (">=", 50_000),
    "notify_ingest_per_s": (">=", 20_000),
    "bytes_per_tracked_device": ("<=", 2048),
    "mcp_read_overhead_ratio": ("<=", 1.5),
    "soak_stuck_operations": ("<=", 0),
    "soak_rss_growth_bytes": ("<=", 10 * 2**20),
    "soak_wall_s": ("<=", 120),
}


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """One figure. ``ideal`` is the theory's value where one applies; ``simulated`` says the
    figure is in simulated time (the radio), not real time (the server's own cost)."""

    name: str
    value: float
    unit: str
    ideal: float | None = None
    simulated: bool = True

    @property
    def ratio(self) -> float | None:
        if self.ideal is None or self.ideal == 0:
            return None
        return self.value / self.ideal

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "ideal": None if self.ideal is None else _round(self.ideal),
            "ratio": None if ratio is None else round(ratio, 4),
            "simulated": self.simulated,
        }

    def target(self) -> str:
        rule = TARGETS.get(self.name)
        if rule is None:
            return ""
        op, bound = rule
        met = self.value >= bound if op == ">=" else self.value <= bound
        shown = f"{bound:,.0f}" if self.unit == "chars" else _fmt(bound)  # counts: no decimals
        return f"{op} {shown} {'met' if met else 'MISSED'}"


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 0.01:
        return f"{value:.4g}"
    return f"{value:.3g}"


def stats(name: str, samples: list[float], unit: str, ideal: float | None) -> list[Result]:
    """Min, median, mean and max of the samples; the mean carries the ideal."""
    return [
        Result(f"{name}_min_s", min(samples), unit),
        Result(f"{name}_median_s", statistics.median(samples), unit),
        Result(f"{name}_s", statistics.fmean(samples), unit, ideal),
        Result(f"{name}_max_s", max(samples), unit),
    ]


def rate_and_latency(
    name: str, size: int, latencies: list[float], ideal_rate: float, ideal_time: float
) -> list[Result]:
    """``<name>_bytes_per_s`` (from the mean) and ``<name>_latency_median_s``, with ideals."""
    return [
        Result(f"{name}_bytes_per_s", size / statistics.fmean(latencies), "B/s", ideal_rate),
        Result(f"{name}_latency_median_s", statistics.median(latencies), "s", ideal_time),
    ]


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()

    def step(self, label: str) -> None:
        width = 30
        filled = round(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.perf_counter() - self.started
        line = f"[{bar}] {self.done}/{self.total} {elapsed:5.1f}s {label}"
        if self.tty:
            self.stream.write("\r" + line[:110].ljust(110))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.done += 1

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


# --------------------------------------------------------------------------- parameters


@dataclass
class BenchParams:
    runs: int = 10
    transfer_sizes: tuple[int, ...] = (20, 244, 512)
    transfer_ops: int = 20
    stream_bytes: int = 64 * 1024
    notify_window_s: float = 2.0
    device_count: int = 10
    operation_count: int = 100
    concurrent_operations: int = 5
    read_ratio: float = 0.5
    adv_count: int = 200_000
    adv_devices: int = 1_000
    notify_count: int = 200_000
    tracked_devices: int = 10_000
    mcp_calls: int = 400
    soak_ops: int = 50_000
    seed: int = 2026

    @classmethod
    def quick(cls, seed: int = 2026) -> BenchParams:
        return cls(
            transfer_ops=8,
            stream_bytes=16 * 1024,
            notify_window_s=1.0,
            operation_count=50,
            adv_count=40_000,
            notify_count=40_000,
            mcp_calls=150,
            soak_ops=2_000,
            seed=seed,
        )


def _fast_device(address: str, name: str, mtu: int, *keys: str) -> list[str]:
    """A device on the benchmark's fast link: 15 ms interval, 2M PHY, 6 packets per event.
    ``keys`` are more device keys (TOML lines); they must precede its ``[devices.link]`` table."""
    return [
        "[[devices]]",
        f'address = "{address}"',
        f'name = "{name}"',
        "rssi = -55",
        "adv_interval_ms = 100",
        f"mtu = {mtu}",
        *keys,
        "[devices.link]",
        "connection_interval_ms = 15",
        'phy = "2M"',
        "packets_per_event = 6",
    ]


def bench_world(params: BenchParams) -> str:
    """The benchmark world as TOML: the target of discovery, connection and transfer (MTU 247,
    2M PHY, 15 ms interval, 6 packets per event), and the load test's devices."""
    lines = [
        'name = "bench"',
        'description = "Written by mcp-ble bench"',
        f"seed = {params.seed}",
        "",
        "[link]",
        "scan_interval_ms = 100",
        "scan_window_ms = 30",
        f"adapter_slots = {max(7, min(64, params.device_count + 1))}",
        "",
        *_fast_device(TARGET, TARGET_NAME, 247, 'service_uuids = ["fff0"]'),
        "",
        "[[devices.services]]",
        'uuid = "fff0"',
        "",
        "[[devices.services.characteristics]]",
        'uuid = "fff1"',
        'properties = ["read", "write", "write-without-response"]',
        'value = "00"',
        "",
        "[[devices.services.characteristics]]",
        'uuid = "fff2"',
        'properties = ["notify"]',
        'generator = { kind = "counter", start = 0, step = 1, min = 0, max = 255 }',
        f'prefix = "{"a5" * 243}"',
        "notify_hz = 10000",
    ]
    # the MTU sweep's device: it accepts the largest MTU, the adapter's limit decides
    lines += [
        "",
        *_fast_device(MTU_TARGET, "Bench MTU Target", 517),
        "",
        "[[devices.services]]",
        'uuid = "fff0"',
        "",
        "[[devices.services.characteristics]]",
        'uuid = "fff1"',
        'properties = ["write-without-response"]',
    ]
    for i in range(1, params.device_count + 1):
        lines += [
            "",
            "[[devices]]",
            f'address = "BE:0D:00:00:{i >> 8:02X}:{i & 0xFF:02X}"',
            f'name = "Load {i}"',
            f"rssi = {-50 - i % 30}",
            "adv_interval_ms = 50",
            "",
            "[devices.faults.errors]",
            "in_progress = 0.02",
            "",
            "[[devices.services]]",
            'uuid = "fff0"',
            "",
            "[[devices.services.characteristics]]",
            'uuid = "fff1"',
            'properties = ["read", "write"]',
            'value = "0011223344556677"',
        ]
    return "\n".join(lines) + "\n"


def load_address(i: int) -> str:
    return f"BE:0D:00:00:{i >> 8:02X}:{i & 0xFF:02X}"


# --------------------------------------------------------------------------- the suite


@dataclass
class Suite:
    """One run of the benchmarks under one settings file."""

    loaded: Any
    catalog: Any
    params: BenchParams
    world: Path
    progress: Progress
    results: list[Result] = field(default_factory=list)

    def app(self) -> BleApp:
        from .app import BleApp

        app = BleApp(self.loaded.settings, self.catalog, self.loaded)
        return app

    @staticmethod
    def backend(app: BleApp) -> Any:
        return app.radio

    async def discovered(self, app: BleApp, *addresses: str) -> None:
        """Scan until the given devices are in the tracker (a precondition, not measured)."""
        for _ in range(20):
            if all(app.tracker.get(a) is not None for a in addresses):
                return
            await app.scan(2.0, ScanFilter())
        raise BleError(f"the benchmark world's devices were not heard: {addresses}")

    # ------------------------------------------------------------ discovery and connection

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

    async def transfer(self) -> None:
        p = self.params
        async with self.app() as app:
            radio = self.backend(app)
            await self.discovered(app, TARGET)
            await app.connect(TARGET)
            await app.gatt(TARGET)
            link = radio.link_params(TARGET)
            link = theory.LinkParams(**{**link.__dict__, "mtu": radio.mtu(TARGET)})
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
                    await self.discovered(app, MTU_TARGET)
                    await app.connect(MTU_TARGET)
                    await app.gatt(MTU_TARGET)
                    link = radio.link_params(MTU_TARGET)
                    link = theory.LinkParams(**{**link.__dict__, "mtu": radio.mtu(MTU_TARGET)})
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

    @staticmethod
    async def _repeat(radio: Any, n: int, op: Callable[[], Awaitable[Any]]) -> list[float]:
        """Run ``op`` back to back; simulated seconds of each (the first aligns to the link)."""
        await op()
        out = []
        for _ in range(n):
            before = radio.now()
            await op()
            out.append(radio.now() - before)
        return out

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

    # ------------------------------------------------------------ micro-benchmarks (real time)

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

        from .server import build_server

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

    # ------------------------------------------------------------ tokens

    async def tokens(self) -> None:
        """What one agent session on the demo world reads, in characters, beside each ceiling
        (see :mod:`mcp_ble.core.bench_tokens`)."""
        from .app import BleApp
        from .bench_tokens import CEILINGS, ceiling_of, token_session

        self.progress.step("tokens: one agent session on the demo world")
        settings = self.loaded.settings.model_copy(deep=True)
        sim = settings.backend_settings("simulated")
        sim.world = "demo"
        sim.time_scale = 0.01  # notifications flow while the session waits for one
        if hasattr(sim, "seed"):
            sim.seed = None  # the demo world's own seed: the same session every run
        async with BleApp(settings, self.catalog, self.loaded) as app:
            figures = await token_session(app)
        for name in CEILINGS:
            TARGETS[name] = ("<=", ceiling_of(name, figures))
            self.results.append(Result(name, figures[name], "chars", simulated=False))

    # ------------------------------------------------------------ soak

    async def soak(self) -> None:
        """Mixed operations under the lab world's faults (see :mod:`mcp_ble.core.bench_soak`)."""
        from .app import BleApp
        from .bench_soak import results, soak

        n = self.params.soak_ops
        self.progress.step(f"soak: {n} mixed operations under the lab world's faults")
        settings = self.loaded.settings.model_copy(deep=True)
        sim = settings.backend_settings("simulated")
        sim.world = "lab"
        async with BleApp(settings, self.catalog, self.loaded) as app:
            await app.scan(3.0, ScanFilter())  # the devices in range are known before the mix
            report = await soak(app, n, self.params.seed, rss=resident_memory_bytes)
        self.results += results(report, Result)

    async def retry(self) -> None:
        """Connects to the lab world's flaky device (see :mod:`mcp_ble.core.bench_retry`)."""
        from .app import BleApp
        from .bench_retry import flaky_connects, results

        runs = max(self.params.runs, 200)
        self.progress.step(f"retry: {runs} connects to a device that aborts a third of them")
        settings = self.loaded.settings.model_copy(deep=True)
        settings.backend_settings("simulated").world = "lab"
        async with BleApp(settings, self.catalog, self.loaded) as app:
            times, failures = await flaky_connects(app, runs)
        self.results += results(times, failures, Result)


def resident_memory_bytes() -> int | None:
    from mcp_ble.plugins.metrics import resident_memory_bytes as rss

    return rss()


STEPS = {
    "discovery": 2,
    "connection": 1,
    "transfer": 2,  # plus one per transfer size
    "mtu": 1,
    "load": 1,
    "micro": 4,
    "tokens": 1,
    "soak": 1,
    "retry": 1,
}


def count_steps(groups: list[str], params: BenchParams) -> int:
    total = sum(STEPS[g] for g in groups)
    if "transfer" in groups:
        total += len({*params.transfer_sizes, 244})
    return total


async def run_suite(
    loaded: Any, catalog: Any, params: BenchParams, groups: list[str], progress: Progress
) -> list[Result]:
    """Every selected benchmark under one settings file; returns the figures in order."""
    with tempfile.TemporaryDirectory(prefix="mcp-ble-bench-") as folder:
        world = Path(folder) / "bench.toml"
        world.write_text(bench_world(params), encoding="utf-8")
        configure(loaded, world, params)
        suite = Suite(loaded, catalog, params, world, progress)
        for group in GROUPS:
            if group in groups:
                await getattr(suite, group)()
        return suite.results


def configure(loaded: Any, world: Path, params: BenchParams) -> None:
    """Whatever the settings file says about the backend, the bench runs the simulated radio
    on a virtual clock over its own world; plugins and server settings stay as given."""
    settings = loaded.settings
    settings.backend = "simulated"
    sim = settings.backend_settings("simulated")
    sim.world = str(world)
    sim.time_scale = 0.0
    if hasattr(sim, "seed"):
        sim.seed = params.seed
    if hasattr(sim, "virtual_idle"):
        sim.virtual_idle = "frozen"
    settings.server.max_tracked_devices = max(
        settings.server.max_tracked_devices, params.tracked_devices
    )
    # No person answers during a benchmark: writes are open, and their audit lines (still
    # written, so their cost is measured) go nowhere.
    settings.server.write_policy = "open"
    settings.server.audit_log = os.devnull


# --------------------------------------------------------------------------- output


def table(results: list[Result]) -> str:
    rows: list[tuple[str, ...]] = [("FIGURE", "VALUE", "UNIT", "IDEAL", "RATIO", "CLOCK", "TARGET")]
    for r in results:
        ratio = r.ratio
        rows.append(
            (
                r.name,
                f"{r.value:,.0f}" if r.unit == "chars" else _fmt(r.value),
                r.unit,
                _fmt(r.ideal),
                "-" if ratio is None else f"{ratio:.3f}",
                "simulated" if r.simulated else ("-" if r.unit == "chars" else "real"),
                r.target(),
            )
        )
    return _render(rows)


def compare_table(a: list[Result], b: list[Result]) -> tuple[str, list[dict[str, Any]]]:
    """Figures of both runs side by side (a figure only one run has shows '-' for the other)."""
    in_a = {r.name: r for r in a}
    in_b = {r.name: r for r in b}
    names = list(in_a) + [name for name in in_b if name not in in_a]
    rows: list[tuple[str, ...]] = [("FIGURE", "A", "B", "B/A", "UNIT", "CLOCK")]
    pairs = []
    for name in names:
        ra, rb = in_a.get(name), in_b.get(name)
        some = ra or rb
        assert some is not None
        ratio = rb.value / ra.value if ra is not None and rb is not None and ra.value else None
        rows.append(
            (
                name,
                _fmt(ra.value) if ra else "-",
                _fmt(rb.value) if rb else "-",
                "-" if ratio is None else f"{ratio:.3f}",
                some.unit,
                "simulated" if some.simulated else "real",
            )
        )
        pairs.append(
            {
                "name": name,
                "unit": some.unit,
                "a": _round(ra.value) if ra else None,
                "b": _round(rb.value) if rb else None,
                "ratio": None if ratio is None else round(ratio, 4),
                "simulated": some.simulated,
            }
        )
    return _render(rows), pairs


def _render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 3, 4} if rows[0][1] == "VALUE" else {1, 2, 3}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="small parameters: the whole suite in seconds"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.toml", "B.toml"),
        help="run the suite under two settings files and print B/A for every figure",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated groups to run (default all but {', '.join(OPT_IN)}): "
        f"{', '.join(GROUPS)}",
    )
    parser.add_argument("--seed", type=int, default=2026, help="seed of the benchmark world")
    parser.add_argument(
        "--runs",
        type=int,
        default=10,
        metavar="N",
        help="discovery and connection runs (default 10; more: a tighter mean)",
    )


def run_bench(args: argparse.Namespace, load: Callable[[argparse.Namespace], Any]) -> int:
    """The ``mcp-ble bench`` command. ``load(args)`` gives (LoadedSettings, PluginCatalog)."""
    groups = [g for g in GROUPS if g not in OPT_IN]
    if args.only:
        groups = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ConfigError(
                f"--only: unknown benchmark group(s) {', '.join(unknown)}; "
                f"choose from {', '.join(GROUPS)}"
            )
    params = BenchParams.quick(args.seed) if args.quick else BenchParams(seed=args.seed)
    if args.runs < 1:
        raise ConfigError(f"--runs {args.runs}: give at least 1 run")
    params.runs = args.runs
    configs = list(args.compare) if args.compare else [args.config]
    loads = []
    for config in configs:
        args.config = config
        loads.append(load(args))
    progress = Progress(count_steps(groups, params) * len(loads))
    runs = [asyncio.run(run_suite(lo, cat, params, groups, progress)) for lo, cat in loads]
    progress.finish()
    mode = "quick" if args.quick else "full"
    if len(runs) == 1:
        results = runs[0]
        source = loads[0][0].config_path
        print(f"mcp-ble bench ({mode}), settings {source}, seed {params.seed}")
        print("simulated = simulated time on the virtual clock; real = this machine's time")
        print(table(results))
        if args.json:
            payload = {"results": [r.as_json() for r in results]}
            args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        missed = [r.name for r in results if r.target().endswith("MISSED")]
        if missed:
            print(f"targets missed: {', '.join(missed)}")
        return 0
    a, b = runs
    text, pairs = compare_table(a, b)
    print(f"mcp-ble bench --compare ({mode}), seed {params.seed}")
    print(f"A = {loads[0][0].config_path}\nB = {loads[1][0].config_path}")
    print(text)
    if args.json:
        pair_payload: dict[str, Any] = {
            "a": {"settings": str(configs[0]), "results": [r.as_json() for r in a]},
            "b": {"settings": str(configs[1]), "results": [r.as_json() for r in b]},
            "ratios": pairs,
        }
        args.json.write_text(json.dumps(pair_payload, indent=2) + "\n", encoding="utf-8")
    return 0
