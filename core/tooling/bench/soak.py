"""``mcp-ble bench --only soak``: many mixed operations under the ``lab`` world's faults.

Workers run a seeded stream of operations — scan, connect, read, write, subscribe, drain
(``notifications``), unsubscribe, disconnect — against the lab world's misbehaving devices
(flaky links, busy stacks, a notification storm, a device that drops every link after 20
operations, refused GATT requests, devices that walk out of range) through ``BleApp`` and the
plugins the settings enable, on the virtual clock. The soak reports:

- the error rate, and the count per error code (what the faults and the plugins let through),
- the growth of the process's resident memory from after a warm-up to the end,
- how many operations got stuck: each operation has the deadline the server promises for it
  (``server.operation_timeout_s``, or the connect timeout) plus half a second; an operation
  still running then is cancelled and counted as stuck. The ideal is zero.

Deadlines are real time (the server's own deadlines are), radio latencies simulated time.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import BleError
from ...models import ScanFilter

if TYPE_CHECKING:
    from ...app import BleApp

#: Operations of the mix and their weights.
MIX = {
    "scan": 2,
    "connect": 6,
    "read": 8,
    "write": 6,
    "subscribe": 3,
    "drain": 4,
    "unsubscribe": 2,
    "disconnect": 2,
}
#: (address, readable, writable, notifying) characteristics of the lab world's devices.
TARGETS = (
    ("1A:B0:00:00:00:01", "2a19", None, "2a19"),  # flaky sensor
    (
        "1A:B0:00:00:00:02",
        None,
        "6e400002-b5a3-f393-e0a9-e50e24dcca9e",
        "6e400003-b5a3-f393-e0a9-e50e24dcca9e",
    ),  # busy hub
    ("1A:B0:00:00:00:03", None, None, "2a37"),  # walker
    ("1A:B0:00:00:00:04", "fff1", "fff1", None),  # dropper
    ("1A:B0:00:00:00:05", None, None, "fff4"),  # storm
    ("1A:B0:00:00:00:06", "fff1", "fff3", None),  # secure lock
    ("1A:B0:00:00:00:07", "2a19", None, None),  # sleeper
    ("1A:B0:00:00:00:08", "2a29", None, None),  # gateway
    ("1A:B0:00:00:00:09", "fff1", "fff1", None),  # basement node
)
#: What the server may take beyond an operation's own deadline before it counts as stuck.
GRACE_S = 0.5
CONNECT_TIMEOUT_S = 5.0
SCAN_S = 1.0


@dataclass
class SoakReport:
    operations: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    stuck: int = 0
    stuck_kinds: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    overshoot_max_s: float = 0.0
    rss_start: int | None = None
    rss_end: int | None = None
    wall_s: float = 0.0
    simulated_s: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rss_growth(self) -> int | None:
        if self.rss_start is None or self.rss_end is None:
            return None
        return self.rss_end - self.rss_start


#: Which TARGETS column an operation needs (read: a readable characteristic, ...).
NEEDS = {"read": 1, "write": 2, "subscribe": 3, "unsubscribe": 3, "drain": 3}
#: Share of link operations sent to a device that is connected (as an agent would).
ON_A_LINK = 0.9


def plan_operations(count: int, seed: int) -> list[str]:
    """The seeded stream of operation kinds."""
    rng = random.Random(seed)
    return rng.choices(list(MIX), list(MIX.values()), k=count)


def choose_target(app: BleApp, kind: str, rng: random.Random) -> int:
    """A device that has what the operation needs; mostly a connected one for link work."""
    column = NEEDS.get(kind)
    candidates = [i for i, t in enumerate(TARGETS) if column is None or t[column]]
    if kind not in ("scan", "connect") and rng.random() < ON_A_LINK:
        linked = [i for i in candidates if TARGETS[i][0] in app.connections]
        candidates = linked or candidates
    return rng.choice(candidates)


async def _operation(app: BleApp, kind: str, target: int) -> None:
    address = TARGETS[target][0]
    column = NEEDS.get(kind)
    char = TARGETS[target][column] if column is not None else None
    if kind == "scan":
        await app.scan(SCAN_S, ScanFilter())
    elif kind == "connect":
        await app.connect(address, CONNECT_TIMEOUT_S)
    elif kind == "disconnect":
        await app.disconnect(address)
    elif kind == "read":
        await app.read(address, str(char))
    elif kind == "write":
        await app.write(address, str(char), b"\x01\x02", "auto")
    elif kind == "subscribe":
        await app.subscribe(address, str(char))
    elif kind == "unsubscribe":
        await app.unsubscribe(address, str(char))
    else:  # drain
        await app.notifications(address, str(char), 100, 0.0)


def deadline_of(app: BleApp, kind: str) -> float:
    """The real-time deadline the server promises for one operation of this kind."""
    if kind == "connect":
        return CONNECT_TIMEOUT_S
    return float(app.settings.server.operation_timeout_s)


async def soak(app: BleApp, count: int, seed: int, workers: int = 8, rss: Any = None) -> SoakReport:
    """Run ``count`` operations with ``workers`` at a time on a started app."""
    report = SoakReport()
    operations = plan_operations(count, seed)
    rng = random.Random(seed + 1)
    warm = max(1, count // 10)
    cursor = iter(enumerate(operations))
    radio = app.radio
    began_sim = radio.now()
    began = time.perf_counter()

    async def one(kind: str) -> None:
        target = choose_target(app, kind, rng)
        limit = deadline_of(app, kind) + GRACE_S
        start = time.monotonic()
        sim_start = radio.now()
        guard = asyncio.timeout(limit)
        try:
            async with guard:
                await _operation(app, kind, target)
        except TimeoutError:
            if not guard.expired():  # a TimeoutError of the operation's own: a bug
                report.errors[f"internal:{TimeoutError.__name__}"] += 1
                return
            report.stuck += 1
            report.stuck_kinds[kind] += 1
            return
        except BleError as exc:
            report.errors[exc.code] += 1
        except Exception as exc:  # a bug, not a fault: counted under its class, never hidden
            report.errors[f"internal:{type(exc).__name__}"] += 1
        else:
            report.ok += 1
        finally:
            report.operations += 1
            report.latencies.append(radio.now() - sim_start)
        report.overshoot_max_s = max(
            report.overshoot_max_s, time.monotonic() - start - deadline_of(app, kind)
        )

    async def worker() -> None:
        for index, kind in cursor:
            if index == warm and rss is not None:
                gc.collect()
                report.rss_start = rss()
            await one(kind)

    await asyncio.gather(*(worker() for _ in range(workers)))
    report.wall_s = time.perf_counter() - began
    report.simulated_s = radio.now() - began_sim
    if rss is not None:
        gc.collect()
        report.rss_end = rss()
    return report


def results(report: SoakReport, result: Any) -> list[Any]:
    """The soak's figures as bench Results (``result`` is bench.Result), beside their ideals."""
    n = max(1, report.operations)
    out = [
        result("soak_operations", report.operations, "ops", simulated=False),
        result("soak_stuck_operations", report.stuck, "ops", 0.0, simulated=False),
        result("soak_deadline_overshoot_max_s", report.overshoot_max_s, "s", simulated=False),
        result("soak_error_rate", 100 * report.error_count / n, "%"),
    ]
    for code, count in sorted(report.errors.items()):
        out.append(result(f"soak_errors_{code}", 100 * count / n, "%"))
    if report.rss_growth is not None:
        out.append(result("soak_rss_growth_bytes", report.rss_growth, "B", 0.0, simulated=False))
    if report.latencies:
        ordered = sorted(report.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        out.append(result("soak_latency_p99_s", p99, "s"))
    out += [
        result("soak_simulated_s", report.simulated_s, "s"),
        result("soak_wall_s", report.wall_s, "s", simulated=False),
        result("soak_operations_per_s", report.operations / report.wall_s, "op/s", simulated=False),
    ]
    return out
