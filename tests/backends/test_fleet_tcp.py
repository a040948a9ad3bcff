"""Two remote HCI radios as one fleet, through the MCP client, over real HCI between processes.

Two ``bumble.apps.controllers`` processes, each its own link: one controller of each link is a
radio of the server under test (the production bumble backend on ``tcp-client:127.0.0.1:PORT``,
two ``[[radios]]``), the other carries the peripheral (``fault_peripheral.py``: bumble's heart
rate, battery and device information profiles). The peripheral is one device on both links, so
both radios hear it; it takes one link at a time, as a real one does (``bumble.apps.controllers``
takes exactly two transports, so each link holds that one peripheral). The test checks the
merge (one device, heard by both radios with an RSSI each, the best one named: bumble's
controllers report -50 dBm everywhere, so the one that heard it first), the routing (the connect
goes to the radio named best) and operations following the link, and that radio killed
mid-session: the link ends with the radio's reason, the other radio keeps serving, and the
reconnect goes through it; started again, the killed radio is taken back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mcp.client import Client

from mcp_ble.core import radio
from mcp_ble.core.app import BleApp
from mcp_ble.core.server import build_server

from tests.faultbed import Controllers, Process, free_port, peripheral
from tests.helpers import load, ok, write_config

SHARED = "C4:FA:17:00:00:5E"
BATTERY = "2a19"
HEART_RATE = "2a37"
RADIOS = ("a", "b")


@dataclass
class FleetBed:
    client: Client
    app: BleApp
    controllers: dict[str, Controllers]
    device: Process
    #: Every process started, replacements included: teardown kills them all.
    processes: list[Process]

    def restart(self, name: str) -> None:
        """The radio's controllers process again, on the same ports."""
        again = Controllers(*self.controllers[name].ports)
        self.processes.append(again)
        self.controllers[name] = again.start()


@contextlib.asynccontextmanager
async def fleet_bed(tmp_path: Any) -> AsyncIterator[FleetBed]:
    ports = {name: (free_port(), free_port()) for name in RADIOS}
    controllers = {name: Controllers(*ports[name]) for name in RADIOS}
    device = peripheral(*(ports[name][0] for name in RADIOS), address=SHARED)
    processes: list[Process] = [*controllers.values(), device]
    try:
        for process in processes:  # all at once: the peripheral retries until its ports listen
            Process.start(process)
        for each in controllers.values():
            each.wait_listening()
        device.wait_for_line("advertising", count=len(RADIOS))
        text = '[server]\nscan_duration_s = 1.0\nwrite_policy = "open"\n' + "".join(
            f'[[radios]]\nname = "{name}"\nbackend = "bumble"\n'
            f'transport = "tcp-client:127.0.0.1:{ports[name][1]}"\natt_timeout_s = 1.0\n'
            for name in RADIOS
        )
        loaded, catalog = load(write_config(tmp_path, text))
        app = BleApp.create(loaded, catalog)
        async with Client(build_server(app)) as client:
            yield FleetBed(client, app, controllers, device, processes)
    finally:
        for process in processes:
            process.stop()


async def eventually(check: Any, timeout_s: float = 5.0) -> Any:
    end = time.monotonic() + timeout_s
    while not (value := await check()):
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.05)
    return value


async def links(client: Client) -> dict[str, str]:
    listed = (await ok(client, "ble_connections"))["connections"]
    return {c["address"]: c["radio"] for c in listed}


async def test_two_remote_radios_merge_route_and_survive_one_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(radio, "RECOVERY_MAX_S", 0.5)  # the default backoff, capped sooner
    async with fleet_bed(tmp_path) as b:
        c = b.client
        # Merge: one device, heard by both radios (each reports its own RSSI), the best named.
        scan = await ok(c, "ble_scan", duration_s=1.0)
        found = {d["address"]: d for d in scan["devices"]}
        assert list(found) == [SHARED], scan
        record = b.app.tracker.get(SHARED)
        assert record is not None and record.heard_by is not None
        # bumble's virtual controllers report every advertisement at -50 dBm: at equal strength
        # the radio that heard it first is named best.
        assert {r: rssi for r, (rssi, _) in record.heard_by.items()} == {"a": -50, "b": -50}
        best = found[SHARED]["radio"]
        assert best == next(iter(record.heard_by)), (found, record.heard_by)
        other = "b" if best == "a" else "a"

        # Routing: the connect goes to the radio named best; operations follow the link.
        connected = await ok(c, "ble_connect", address=SHARED)
        assert connected["radio"] == best, connected
        assert (await ok(c, "ble_read", address=SHARED, characteristic=BATTERY))["hex"] == "57"
        await ok(c, "ble_subscribe", address=SHARED, characteristic=HEART_RATE)
        assert await links(c) == {SHARED: best}

        # The radio holding the link is killed: its link ends with its reason; the other
        # radio keeps serving, and the reconnect goes through it.
        b.controllers[best].stop()
        await eventually(lambda: _no_links(c))
        ended = await ok(c, "ble_notifications", address=SHARED, characteristic=HEART_RATE)
        assert ended["ended"].startswith(f"link lost: radio {best} lost"), ended
        status = await ok(c, "ble_status")
        assert status["radio"] == "ready (1 of 2 radios down)", status
        assert status["radios"][best].startswith(("lost", "recovering")), status
        assert status["radios"][other].startswith("ready"), status
        again = await ok(c, "ble_connect", address=SHARED, timeout_s=5)
        assert again["radio"] == other and "already_connected" not in again, again
        value = await ok(c, "ble_read", address=SHARED, characteristic=BATTERY)
        assert value["hex"] == "57"
        assert await links(c) == {SHARED: other}

        # The killed radio comes back on its own and serves again beside the other.
        b.restart(best)
        await eventually(lambda: _ready(c, best), timeout_s=10)
        assert await links(c) == {SHARED: other}


async def _ready(client: Client, name: str) -> bool:
    return bool((await ok(client, "ble_status"))["radios"][name].startswith("ready"))


async def _no_links(client: Client) -> bool:
    return await links(client) == {}
