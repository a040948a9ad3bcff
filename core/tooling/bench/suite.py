"""The bench suite: every group in order under one settings file, on the simulated radio with a
virtual clock over a benchmark world written for the run."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...models import ScanFilter
from .command import GROUPS
from .micro import MicroGroup
from .radio import RadioGroups
from .results import TARGETS, Progress, Result
from .sensors import SensorsGroup
from .world import BenchParams, bench_world


@dataclass
class Suite(RadioGroups, MicroGroup, SensorsGroup):
    """Every group of the benchmarks, for one run under one settings file."""

    async def tokens(self) -> None:
        """What one agent session on the demo world reads, in characters, beside each ceiling
        (see :mod:`.tokens`)."""
        from ...app import BleApp
        from ..demo import DEMO_DECODERS
        from .tokens import CEILINGS, ceiling_of, decoded_scan, token_session

        self.progress.step("tokens: one agent session on the demo world")
        settings = self.loaded.settings.model_copy(deep=True)
        sim = settings.backend_settings("simulated")
        sim.world = "demo"
        sim.time_scale = 0.01  # notifications flow while the session waits for one
        if hasattr(sim, "seed"):
            sim.seed = None  # the demo world's own seed: the same session every run
        async with BleApp(settings, self.catalog, self.loaded) as app:
            figures = await token_session(app)
        self.progress.step("tokens: a scan of the demo world with its decoders on")
        settings.plugins += [name for name in DEMO_DECODERS if name not in settings.plugins]
        async with BleApp(settings, self.catalog, self.loaded) as app:
            figures |= await decoded_scan(app)
        for name in CEILINGS:
            TARGETS[name] = ("<=", ceiling_of(name, figures))
            self.results.append(Result(name, figures[name], "chars", simulated=False))

    # ------------------------------------------------------------ soak

    async def soak(self) -> None:
        """Mixed operations under the lab world's faults (see :mod:`.soak`)."""
        from ...app import BleApp
        from .soak import results, soak

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
        """Connects to the lab world's flaky device (see :mod:`.retry`)."""
        from ...app import BleApp
        from .retry import flaky_connects, results

        runs = max(self.params.runs, 200)
        self.progress.step(f"retry: {runs} connects to a device that aborts a third of them")
        settings = self.loaded.settings.model_copy(deep=True)
        settings.backend_settings("simulated").world = "lab"
        async with BleApp(settings, self.catalog, self.loaded) as app:
            times, failures = await flaky_connects(app, runs)
        self.results += results(times, failures, Result)

    async def fleet(self) -> None:
        """Four radios in four overlapping rooms (see :mod:`.fleet`)."""
        from ...app import BleApp
        from .fleet import DEVICES, ROOMS, SLOTS, fleet_settings, fleet_world, results, run_fleet

        seed = self.params.seed
        self.progress.step(
            f"fleet: {len(ROOMS)} radios in overlapping rooms, {DEVICES} devices, "
            f"{SLOTS} slots each"
        )
        world = self.world.parent / "fleet.toml"
        world.write_text(fleet_world(seed), encoding="utf-8")
        settings = fleet_settings(self.loaded.settings, str(world), seed)
        async with BleApp(settings, self.catalog, self.loaded) as app:
            report = await run_fleet(app, seed)
        self.results += results(report, Result)


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
    "sensors": 1,
    "tokens": 2,
    "soak": 1,
    "retry": 1,
    "fleet": 1,
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
    if getattr(settings, "radios", None):
        settings.radios = []  # one simulated radio; the fleet group sets its own radios
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
