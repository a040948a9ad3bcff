"""``mcp-ble bench --only fleet``: four simulated radios in four rooms that overlap, 200 devices.

The world (written for the run, seeded): a 40 m x 40 m floor of four 20 m x 20 m rooms, a radio in
the middle of each (3 slots, hearing 15 m around it, so its neighbours' near halves too), and 200
devices scattered over the floor and 5 m around it (some out of every radio's range), their RSSI
at 1 m drawn from -50..-40 dBm and falling with distance (path loss exponent 2.5). The radios are
simulated backends sharing the world and its virtual clock; the server runs them as one fleet.

- Discovery: one scan through the fleet; the devices found against those within range of any
  radio.
- Routing: four rounds of connects, one at a time in a seeded order, to devices some radio with
  a free slot hears, until every slot is taken (then every link is ended for the next round);
  each time, whether the radio the link went to is the one with the best mean RSSI (the
  world's, without noise) among those that hear the device and have a free slot; and the fewest
  links held at the end of a round against the slots of all radios.
- Failover: every link ended, then one radio filled with devices it hears best and another
  radio hears too (the radio with the most such devices); it is switched off and each of its
  devices connected again at once: the links moved to another radio against those it held, and
  the simulated time from the switch to each link being up again, against each device's ideal
  connection time (:func:`~mcp_ble.backends.simulated.theory.connection_time`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ....backends.simulated import theory
from ...errors import BleError
from ...models import ScanFilter

if TYPE_CHECKING:
    from ...app import BleApp

ROOMS = (("room1", 10.0, 10.0), ("room2", 30.0, 10.0), ("room3", 10.0, 30.0), ("room4", 30.0, 30.0))
SLOTS = 3
DEVICES = 200
RANGE_M = 15.0
FIRST_ADDRESS = "BE:F1:00:00:00:01"
SCAN_S = 3.0
#: Rounds of routing: each connects until every slot is taken, then ends every link.
ROUNDS = 4


def fleet_settings(settings: Any, world: str, seed: int) -> Any:
    """A copy of ``settings`` whose radios are the world's four, as ``[[radios]]`` tables of the
    simulated backend on one virtual clock (plugins and server settings as given)."""
    out = settings.model_copy(deep=True)
    model = type(out).radio_models["simulated"]
    out.radios = [
        model(
            name=name,
            backend="simulated",
            world=world,
            time_scale=0.0,
            seed=seed,
            virtual_idle="frozen",
            radio=name,
        )
        for name, _, _ in ROOMS
    ]
    out.server.max_tracked_devices = max(out.server.max_tracked_devices, 2 * DEVICES)
    return out


def fleet_world(seed: int) -> str:
    """The fleet benchmark's world as TOML."""
    lines = [
        'name = "bench-fleet"',
        'description = "Written by mcp-ble bench: four radios in four overlapping rooms"',
        f"seed = {seed}",
        "path_loss_exponent = 2.5",
        "",
        "[link]",
        "scan_interval_ms = 100",
        "scan_window_ms = 100",
        f"adapter_slots = {SLOTS}",
        "sensitivity_dbm = -95",
    ]
    for name, x, y in ROOMS:
        lines += [
            "",
            "[[radios]]",
            f'name = "{name}"',
            f"position = [{x:g}, {y:g}]",
            f"range_m = {RANGE_M:g}",
            f"slots = {SLOTS}",
        ]
    lines += [
        "",
        "[[crowds]]",
        f"count = {DEVICES}",
        f'first_address = "{FIRST_ADDRESS}"',
        'name = "Fleet {i}"',
        "adv_interval_ms = [100, 300]",
        "rssi = [-50, -40]",
        "rssi_noise_db = 2",
        "connectable_fraction = 1.0",
        "area = [-5, -5, 45, 45]",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class FleetReport:
    in_range: int = 0
    found: int = 0
    connects: int = 0
    best_chosen: int = 0
    connect_failures: int = 0
    links: int = 0
    slots: int = 0
    moved: list[float] = field(default_factory=list)
    movable: int = 0
    move_ideals: list[float] = field(default_factory=list)


def _members(app: BleApp) -> dict[str, Any]:
    """The simulated backend of each radio, by name."""
    fleet = app.radio
    return {radio.name: radio.backend for radio in fleet.radios}  # type: ignore[attr-defined]


def _link_radio(app: BleApp, address: str) -> str | None:
    radio = app.radio.link_radio.get(address)  # type: ignore[attr-defined]
    return None if radio is None else str(radio.name)


def _mean_rssi(backend: Any, address: str) -> float | None:
    """The device's mean RSSI at this radio (None: out of its range)."""
    heard = backend.hears(address)
    if heard is None:
        return None
    return float(heard.device.spec.rssi - heard.loss_db)


def _best_free(members: dict[str, Any], address: str, exclude: str | None = None) -> str | None:
    """The radio with the best mean RSSI among those that hear the device, are on and have a
    free slot."""
    best: tuple[float, str] | None = None
    for name, backend in members.items():
        if name == exclude or backend.off:
            continue
        used, limit = backend.connection_slots()
        rssi = _mean_rssi(backend, address)
        if rssi is None or used >= limit:
            continue
        if best is None or rssi > best[0]:
            best = (rssi, name)
    return None if best is None else best[1]


async def run_fleet(app: BleApp, seed: int) -> FleetReport:
    report = FleetReport()
    members = _members(app)
    any_radio = next(iter(members.values()))
    addresses = list(any_radio.devices)
    report.in_range = sum(
        1 for a in addresses if any(b.hears(a) is not None for b in members.values())
    )
    report.slots = sum(b.connection_slots()[1] for b in members.values())

    outcome = await app.scan(SCAN_S, ScanFilter())
    report.found = outcome.matched

    order = [a for a in addresses if any(b.hears(a) is not None for b in members.values())]
    random.Random(seed).shuffle(order)
    queue = iter(order)
    held = []
    for _ in range(ROUNDS):
        for address in queue:
            best = _best_free(members, address)
            if best is None:
                continue  # every radio that hears it is full: nothing to choose
            report.connects += 1
            try:
                await app.connect(address)
            except BleError:
                report.connect_failures += 1
                continue
            report.best_chosen += _link_radio(app, address) == best
            if _links_now(members) >= report.slots:
                break
        held.append(_links_now(members))
        for backend in members.values():
            for address in backend.links():
                await app.disconnect(address)
    report.links = min(held)

    await _failover(app, members, report)
    return report


def _links_now(members: dict[str, Any]) -> int:
    return sum(len(b.links()) for b in members.values())


async def _failover(app: BleApp, members: dict[str, Any], report: FleetReport) -> None:
    """Fill one radio with devices it hears best and another radio hears too, switch it off,
    and connect them again at once."""
    for backend in members.values():
        for address in backend.links():
            await app.disconnect(address)

    def candidates(name: str) -> list[str]:
        others = [b for n, b in members.items() if n != name]
        return [
            a
            for a in sorted(members[name].devices)
            if _best_free(members, a) == name and any(b.hears(a) for b in others)
        ]

    victim = max(sorted(members), key=lambda name: len(candidates(name)))
    backend = members[victim]
    for address in candidates(victim)[:SLOTS]:
        with contextlib.suppress(BleError):
            await app.connect(address)
    moving = backend.links()
    report.movable = len(moving)
    start = app.now()
    with _quiet("mcp_ble.radio", "mcp_ble.fleet"):  # the loss is the bench's own doing
        backend.switch_off("the bench switched it off")
        await asyncio.sleep(0)  # the core ends the radio's links

    async def move(address: str) -> None:
        try:
            await app.connect(address)
        except BleError:
            return
        if _link_radio(app, address) not in (None, victim):
            report.moved.append(app.now() - start)

    await asyncio.gather(*(move(a) for a in moving))
    link = backend.world.link
    for address in moving:
        device = backend.devices[address]
        report.move_ideals.append(
            theory.connection_time(
                device.adv_interval,
                device.params,
                link.connect_scan_interval_ms / 1000,
                link.connect_scan_window_ms / 1000,
            )
        )


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def results(report: FleetReport, result: Any) -> list[Any]:
    out = [
        result("fleet_devices_found", report.found, "devices", report.in_range),
        result("fleet_links_concurrent", report.links, "links", report.slots),
        result(
            "fleet_best_radio_percent",
            100 * report.best_chosen / report.connects if report.connects else 0.0,
            "%",
            100.0,
        ),
        result("fleet_links_moved", len(report.moved), "links", report.movable),
    ]
    if report.moved:
        out.append(
            result(
                "fleet_move_time_s",
                statistics.fmean(report.moved),
                "s",
                statistics.fmean(report.move_ideals),
            )
        )
        out.append(result("fleet_move_all_s", max(report.moved), "s"))
    return out
