"""Several radios as one (core/fleet.py), through a real MCP client: two simulated radios that
hear one room differently (tests/worlds/fleet_near.toml and fleet_far.toml: the same devices
at other strengths, and one device each that only it hears).

One session walks the whole story, as an agent would meet it: the merged view with the best
radio, connects routed to it and falling back when it fails or is full, operations following
the link, one radio lost mid-session (its links end with the reason, the other serves, its
devices age out) and the reconnect on the radio that remains."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from mcp_ble.core.app import BleApp
from mcp_ble.core.cli import main
from mcp_ble.core.errors import BackendUnavailable
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.server import build_server
from mcp_ble.core.traits import BackendTraits

from tests.helpers import failure, load, ok, write_config

WORLDS = Path(__file__).resolve().parents[1] / "worlds"
BOTH = "F1:EE:70:00:00:01"
NEAR_ONLY = "F1:EE:70:00:00:02"
FAR_ONLY = "F1:EE:70:00:00:03"
FLAKY = "F1:EE:70:00:00:04"
SLOW = "F1:EE:70:00:00:05"
NEAR, FAR = "near", "far"  # what fff1 reads on each radio's copy of a device
CONNECT_ERRORS = 'ble_operations_total{kind="connect",outcome="error"'


def radio(name: str, world: str, extra: str = "") -> str:
    return (
        f'[[radios]]\nname = "{name}"\nbackend = "simulated"\n'
        f'world = "{WORLDS / world}"\ntime_scale = 0\nvirtual_idle = "wall"\n{extra}'
    )


FLEET = (
    '[server]\nwrite_policy = "open"\nrecent_s = 30\n'
    + radio("near", "fleet_near.toml", "slots = 1\n")
    + radio("far", "fleet_far.toml")
)


def by_address(devices: list[dict]) -> dict[str, dict]:
    return {d["address"]: d for d in devices}


async def read(client: Client, address: str) -> str:
    value = await ok(client, "ble_read", address=address, characteristic="fff1")
    return value.get("text") or value["hex"]


async def test_two_radios_serve_as_one(tmp_path):
    loaded, catalog = load(write_config(tmp_path, FLEET))
    app = BleApp.create(loaded, catalog)
    async with Client(build_server(app)) as client:
        # One view of the air: every device once, with the radio that hears it best.
        scan = await ok(client, "ble_scan", duration_s=2)
        seen = by_address(scan["devices"])
        assert {a: (d["rssi"], d["radio"]) for a, d in seen.items()} == {
            BOTH: (-50, "near"),
            NEAR_ONLY: (-55, "near"),
            FAR_ONLY: (-60, "far"),
            FLAKY: (-52, "near"),
            SLOW: (-51, "near"),
        }
        heard = app.tracker.get(BOTH).heard_by
        assert heard is not None and {r: rssi for r, (rssi, _) in heard.items()} == {
            "near": -50,
            "far": -75,
        }
        listed = by_address((await ok(client, "ble_devices"))["devices"])
        assert listed[FAR_ONLY]["radio"] == "far" and listed[BOTH]["radio"] == "near"

        # near refuses every connect to Flaky: the retry goes to far, which takes it.
        flaky = await ok(client, "ble_connect", address=FLAKY)
        assert flaky["radio"] == "far" and flaky["attempts"] == 2
        assert await read(client, FLAKY) == FAR

        # near never completes a connect to Slow: its attempt gets half the time, far the rest.
        slow = await ok(client, "ble_connect", address=SLOW, timeout_s=10)
        assert slow["radio"] == "far" and slow["attempts"] == 2
        await ok(client, "ble_disconnect", address=SLOW)

        # Both goes to near, the best radio with a free slot; the read follows the link.
        assert (await ok(client, "ble_connect", address=BOTH))["radio"] == "near"
        assert await read(client, BOTH) == NEAR

        # near (slots = 1) is full and far never heard NearOnly: no radio can take it, and
        # waiting frees no slot, so the answer comes at once (no retry backoff).
        before = app.radio.now()
        text, info = await failure(client, "ble_connect", address=NEAR_ONLY, timeout_s=20)
        assert info["code"] == "out_of_slots", text
        assert "near 1/1" in text and "few seconds" not in text, text
        assert app.radio.now() - before < 1.0

        # NearOnly takes near's slot; Both, connected again, falls back to far.
        await ok(client, "ble_disconnect", address=BOTH)
        assert (await ok(client, "ble_connect", address=NEAR_ONLY))["radio"] == "near"
        assert (await ok(client, "ble_connect", address=BOTH))["radio"] == "far"
        assert await read(client, BOTH) == FAR
        links = {
            c["address"]: c["radio"] for c in (await ok(client, "ble_connections"))["connections"]
        }
        assert links == {FLAKY: "far", BOTH: "far", NEAR_ONLY: "near"}
        status = await ok(client, "ble_status")
        assert status["radios"]["near"].startswith("ready; slots 1/1")
        assert status["radios"]["far"].startswith("ready; slots 2/7")
        await ok(client, "ble_subscribe", address=BOTH, characteristic="fff1")

        # far is unplugged at t = 40 s, during this scan: its links end with the reason,
        # near keeps serving, and what only far heard ages out.
        await ok(client, "ble_scan", duration_s=90)
        links = {
            c["address"]: c["radio"] for c in (await ok(client, "ble_connections"))["connections"]
        }
        assert links == {NEAR_ONLY: "near"}
        got = await ok(client, "ble_notifications", address=BOTH, characteristic="fff1")
        assert got["ended"].startswith(
            "link lost: radio far lost: the simulated adapter was unplugged"
        ), got
        text, info = await failure(client, "ble_read", address=FLAKY, characteristic="fff1")
        assert info["code"] == "not_connected", text
        assert "link was lost" in text and "(radio far lost: the simulated adapter" in text, text
        assert await read(client, NEAR_ONLY) == "02"
        status = await ok(client, "ble_status")
        assert status["radio"] == "ready (1 of 2 radios down)"
        assert status["radios"]["far"].startswith(("lost (", "recovering (")), status
        listed = by_address((await ok(client, "ble_devices"))["devices"])
        assert FAR_ONLY not in listed
        assert listed[BOTH]["radio"] == "near"

        # The reconnect goes to the radio that remains and hears the device.
        await ok(client, "ble_disconnect", address=NEAR_ONLY)
        assert (await ok(client, "ble_connect", address=BOTH))["radio"] == "near"
        assert await read(client, BOTH) == NEAR

        # Metrics carry the radio (the configured names only).
        metrics = (await client.read_resource("ble://metrics")).contents[0].text
        assert 'ble_connections_active{radio="near"} 1.0' in metrics
        assert 'ble_connections_active{radio="far"} 0.0' in metrics
        assert 'ble_radio_state{radio="near",state="ready"} 1.0' in metrics
        assert 'ble_radio_state{radio="far",state="ready"} 0.0' in metrics
        assert 'ble_radio_slots{radio="near",slots="used"} 1.0' in metrics
        assert 'ble_radio_slots{radio="near",slots="limit"} 1.0' in metrics
        # Both, Flaky and Slow within recent_s: NearOnly was linked (silent) through the scan.
        assert 'ble_radio_devices_recent{radio="near"} 3.0' in metrics
        assert 'ble_radio_devices_recent{radio="far"} 0.0' in metrics  # its reports dropped
        assert 'ble_operations_total{kind="read",outcome="ok",radio="far"} 2.0' in metrics
        # Flaky and Slow failed on near, then succeeded on far: a connect each, on far.
        assert 'ble_operations_total{kind="connect",outcome="ok",radio="far"} 3.0' in metrics
        # NearOnly found every radio full: no radio took it, and the label says so.
        assert 'ble_operations_total{kind="connect",outcome="error",radio="none"} 1.0' in metrics
        assert 'radio=""' not in metrics


def test_doctor_lists_each_radio(tmp_path, capsys):
    code = main(["doctor", "--config", str(write_config(tmp_path, FLEET))])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "near (simulated): ready; slots 0/1; heard 4 devices" in out, out
    assert "far (simulated): ready; slots 0/7; heard 4 devices" in out, out
    assert "2 of 2 radios serve" in out, out


def test_doctor_names_what_is_wrong_with_a_radio(tmp_path, capsys):
    world = write_config(
        tmp_path, '[[devices]]\naddress = "A0:00:00:00:00:09"\nrssi = -50\n', "one.toml"
    )
    bad = radio("bad", "fleet_rooms.toml", 'radio = "nope"\n')
    main(["doctor", "--config", str(write_config(tmp_path, radio("good", str(world)) + bad))])
    out = capsys.readouterr().out
    assert "good (simulated): ready; slots 0/7; heard 1 device in a" in out, out
    assert "bad (simulated): cannot be built: world 'fleet_rooms' has no radio 'nope'" in out
    assert "Error" not in out and "see the radios above; the others serve meanwhile" in out
    code = main(["doctor", "--config", str(write_config(tmp_path, bad))])
    out = capsys.readouterr().out
    assert code != 0 and "no radio can serve" in out, out
    assert "fix: each radio above says what is wrong" in out and "others serve" not in out


async def test_one_radio_results_name_no_radio(tmp_path):
    """A fleet of one (a named radio with a slot cap): results stay as with ``backend``."""
    loaded, catalog = load(write_config(tmp_path, radio("only", "fleet_near.toml", "slots=1\n")))
    async with Client(build_server(BleApp.create(loaded, catalog))) as client:
        scan = await ok(client, "ble_scan", duration_s=1)
        assert scan["devices"] and all("radio" not in d for d in scan["devices"])
        connected = await ok(client, "ble_connect", address=BOTH)
        assert "radio" not in connected
        text, info = await failure(client, "ble_connect", address=NEAR_ONLY, timeout_s=20)
        assert info["code"] == "out_of_slots" and "only 1/1" in text, text
        assert "radios" not in await ok(client, "ble_status")


SIM = 'backend = "simulated"\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            radio("a", "fleet_near.toml") + radio("a", "fleet_far.toml"),
            "settings.toml: radios.1.name: two radios are named 'a' (radios.0 and radios.1)",
        ),
        ('[[radios]]\nname = "a"\nbackend = "nope"\n', "backend = 'nope' is not a backend"),
        ('[[radios]]\nname = "a"\n', "radios.0: names no backend"),
        (radio("a", "fleet_near.toml", "wrld = 1\n"), "unknown key 'radios.0.wrld'"),
        (radio("a", "fleet_near.toml", "max_mtu = 5\n"), "radios.0.max_mtu = 5"),
        (radio("a b", "fleet_near.toml"), "radios.0.name = 'a b': a radio name is"),
        (radio("none", "fleet_near.toml"), "radios.0.name = 'none': 'none' labels the metrics"),
        (radio("a", "fleet_near.toml", "slots = 0\n"), "radios.0.slots = 0"),
        (SIM + radio("a", "fleet_near.toml"), "backend = 'simulated' and [[radios]]"),
        (
            radio("a", "fleet_near.toml") + '[[radios]]\nname = "b"\nbackend = "bleak"\n',
            "settings.toml: radios: simulated radios (a) cannot serve beside real ones",
        ),
        (
            '[[radios]]\nname = "b"\nbackend = "bleak"\n[[radios]]\nname = "a"\nbackend = "auto"\n',
            "settings.toml: radios.1.backend: radio 'a' runs backend 'auto', which chooses another",
        ),
    ],
)
def test_radio_settings_errors(tmp_path, capsys, toml, expected):
    path = write_config(tmp_path, toml)
    code = main(["config", "show", "--config", str(path)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert expected in lines[0], lines[0]


class LateRadio:
    """A backend plugin for the tests below: the simulated radio of a world file whose adapter
    does not answer for its first ``fails`` starts (as a dongle still enumerating would)."""

    fails = 2

    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        from pydantic import BaseModel

        from mcp_ble.backends.simulated.backend import SimulatedBackend
        from mcp_ble.backends.simulated.world import load_world

        plugin = self

        class Late(SimulatedBackend):
            starts = 0

            async def start(self) -> None:
                Late.starts += 1
                if Late.starts <= plugin.fails:
                    raise BackendUnavailable("the late adapter does not answer yet", "wait")
                await super().start()

        class LateSettings(BaseModel):
            world: str = "demo"

        register(
            "late",
            lambda s, _: Late(load_world(s.world), 0, idle="wall"),
            settings=LateSettings,
            traits=BackendTraits(simulated=True),
        )


async def test_a_radio_that_does_not_start_is_taken_when_it_answers(tmp_path):
    toml = radio("near", "fleet_near.toml") + (
        f'[[radios]]\nname = "far"\nbackend = "late"\nworld = "{WORLDS / "fleet_far.toml"}"\n'
    )
    loaded, catalog = load(write_config(tmp_path, toml), extra_plugins={"late": LateRadio()})
    app = BleApp.create(loaded, catalog)
    async with Client(build_server(app)) as client:
        status = await ok(client, "ble_status")
        assert status["radio"] == "ready (1 of 2 radios down)"
        assert "it did not start: the late adapter does not answer yet" in status["radios"]["far"]
        scan = await ok(client, "ble_scan", duration_s=1)
        assert {d["radio"] for d in scan["devices"]} == {"near"}
        far = app.fleet.by_name["far"].backend.health  # re-acquired with backoff, in wall time
        for _ in range(100):
            if far.ready:
                break
            await asyncio.sleep(0.05)
        status = await ok(client, "ble_status")
        assert status["radios"]["far"].startswith("ready") and status["radio"] == "ready", (
            far.reason
        )
        assert type(app.fleet.by_name["far"].backend).starts == 3  # taken by starting it
        scan = await ok(client, "ble_scan", duration_s=1)
        assert by_address(scan["devices"])[FAR_ONLY]["radio"] == "far"


async def test_no_radio_starts(tmp_path):
    toml = "".join(
        f'[[radios]]\nname = "{n}"\nbackend = "late"\nworld = "{WORLDS / "fleet_far.toml"}"\n'
        for n in ("a", "b")
    )
    late = LateRadio()
    late.fails = 10
    loaded, catalog = load(write_config(tmp_path, toml), extra_plugins={"late": late})
    with pytest.raises(BackendUnavailable, match="radio a: the late adapter does not answer"):
        async with BleApp.create(loaded, catalog):
            pass


async def test_radios_in_rooms_of_one_world(tmp_path):
    """Three simulated radios placed in one world (tests/worlds/fleet_rooms.toml): one clock,
    one set of devices, each radio hearing those in its range at a strength that falls with
    distance, a link holding a slot of its own radio only."""
    rooms = WORLDS / "fleet_rooms.toml"
    toml = "".join(
        f'[[radios]]\nname = "{n}"\nbackend = "simulated"\nworld = "{rooms}"\nradio = "{n}"\n'
        'time_scale = 0\nvirtual_idle = "wall"\n'
        for n in ("r0", "r1", "r2")
    )
    d1, d2, d3, d4 = (f"A0:00:00:00:00:0{i}" for i in range(1, 5))
    loaded, catalog = load(write_config(tmp_path, toml))
    app = BleApp.create(loaded, catalog)
    async with Client(build_server(app)) as client:
        seen = by_address((await ok(client, "ble_scan", duration_s=2))["devices"])
        # -50 dBm at 1 m, less 20 log10(d): each device best at the radio nearest to it.
        assert {a: (d["rssi"], d["radio"]) for a, d in seen.items()} == {
            d1: (-50, "r0"),
            d2: (-56, "r0"),
            d3: (-50, "r2"),
            d4: (-64, "r2"),
        }
        heard = app.tracker.get(d2).heard_by or {}
        assert {r: rssi for r, (rssi, _) in heard.items()} == {"r0": -56, "r1": -68}

        # r0 has one slot: d1 takes it; d2, best heard by r0, goes to r1.
        assert (await ok(client, "ble_connect", address=d1))["radio"] == "r0"
        assert (await ok(client, "ble_connect", address=d2))["radio"] == "r1"
        assert await read(client, d2) == "02"
        radios = (await ok(client, "ble_status"))["radios"]
        assert radios["r0"].startswith("ready; slots 1/1")
        assert radios["r1"].startswith("ready; slots 1/7")

        # r1 is switched off: its link ends with the reason; r0 still serves d1.
        app.fleet.by_name["r1"].backend.switch_off()
        links = {
            c["address"]: c["radio"] for c in (await ok(client, "ble_connections"))["connections"]
        }
        assert links == {d1: "r0"}
        assert (await ok(client, "ble_status"))["radios"]["r1"].startswith("lost (")
        text, info = await failure(client, "ble_connect", address=d2, timeout_s=20)
        assert info["code"] == "out_of_slots" and "r0 1/1" in text, text
        await ok(client, "ble_disconnect", address=d1)
        assert (await ok(client, "ble_connect", address=d2))["radio"] == "r0"
        assert await read(client, d2) == "02"

        # r2 goes too: D4 (only r2 heard it) and D3 (r1 and r2) count for no radio left,
        # in ble_status and in the per-radio metric alike.
        app.fleet.by_name["r2"].backend.switch_off()
        radios = (await ok(client, "ble_status"))["radios"]
        assert [radios[r].rsplit("; ", 1)[1] for r in ("r0", "r1", "r2")] == [
            "heard 2",
            "heard 0",
            "heard 0",
        ], radios
        metrics = (await client.read_resource("ble://metrics")).contents[0].text
        for name, count in (("r0", 2), ("r1", 0), ("r2", 0)):
            assert f'ble_radio_devices_recent{{radio="{name}"}} {count}.0' in metrics
        # The connect of d2 that found r0 full ran on no radio (not on r1, its link's last).
        errors = [m for m in metrics.splitlines() if m.startswith(CONNECT_ERRORS)]
        assert errors == ['ble_operations_total{kind="connect",outcome="error",radio="none"} 1.0']


def test_cli_scan_names_the_radio(tmp_path, capsys):
    code = main(["scan", "--duration", "1", "--config", str(write_config(tmp_path, FLEET))])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "RADIO" in out.splitlines()[1], out
    assert any(line.startswith(f"{FAR_ONLY}  -60   far") for line in out.splitlines()), out


def test_best_radio_does_not_flip_with_noise():
    """Radio a hears a device steadily at -60 dBm; b hears it at -62 dBm on average but
    noisily (-57, -67, ...). Each of b's strong reports would make b the best radio if only the
    latest report counted; the smoothed levels keep a, and a radio whose reports went stale
    yields."""
    from mcp_ble.core.models import Advertisement
    from mcp_ble.core.tracker import RADIO_FRESH_S, AdvertisementTracker

    now = [0.0]
    tracker = AdvertisementTracker(clock=lambda: now[0])
    best = []
    for i in range(40):
        now[0] += 0.1
        tracker.ingest(Advertisement(BOTH, -60, radio="a"))
        now[0] += 0.1
        record, _ = tracker.ingest(Advertisement(BOTH, -57 if i % 2 else -67, radio="b"))
        best.append(record.radio)
    assert best == ["a"] * 40
    assert record.rssi == -60
    now[0] += RADIO_FRESH_S + 1  # a falls silent; b still hears it
    record, _ = tracker.ingest(Advertisement(BOTH, -70, radio="b"))
    assert (record.radio, record.rssi) == ("b", -70)


def test_readme_radio_examples_load(tmp_path, monkeypatch):
    """The settings example of README "Many radios" (bleak on two adapters, a remote HCI
    controller over TCP, an ESPHome proxy with its key from the environment) is valid."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Many radios", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example is not None
    # Any 32 bytes in base64, as an ESPHome proxy's api: encryption: key: is.
    monkeypatch.setenv("KITCHEN_PROXY_KEY", "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=")
    loaded, catalog = load(write_config(tmp_path, example.group(1)))
    radios = loaded.settings.radio_list()
    assert [(r.name, r.backend) for r in radios] == [
        ("hci0", "bleak"),
        ("hci1", "bleak"),
        ("garage", "bumble"),
        ("kitchen", "esphome"),
    ]
    assert radios[1].settings.adapter == "hci1"
    assert radios[2].settings.transport == "tcp-client:192.168.1.40:9000"
    catalog.resolve_settings(loaded.settings)  # real radios only: may serve together


async def test_concurrent_connects_share_out_the_slots(tmp_path):
    """Two connects at once to devices both best heard by r0, which has one slot: the slot is
    taken when the first attempt starts, so the other goes to r1 instead of failing on r0."""
    rooms = WORLDS / "fleet_rooms.toml"
    toml = "".join(
        f'[[radios]]\nname = "{n}"\nbackend = "simulated"\nworld = "{rooms}"\nradio = "{n}"\n'
        'time_scale = 0\nvirtual_idle = "wall"\n'
        for n in ("r0", "r1", "r2")
    )
    d1, d2 = "A0:00:00:00:00:01", "A0:00:00:00:00:02"
    loaded, catalog = load(write_config(tmp_path, toml))
    async with Client(build_server(BleApp.create(loaded, catalog))) as client:
        await ok(client, "ble_scan", duration_s=1)
        first, second = await asyncio.gather(
            ok(client, "ble_connect", address=d1), ok(client, "ble_connect", address=d2)
        )
        assert {first["radio"], second["radio"]} == {"r0", "r1"}
        assert "attempts" not in first and "attempts" not in second


async def test_profiler_names_the_radio(tmp_path):
    import json

    rooms, profile = WORLDS / "fleet_rooms.toml", tmp_path / "profile.jsonl"
    toml = f'plugins = ["profiler"]\n[profiler]\npath = "{profile}"\n' + "".join(
        f'[[radios]]\nname = "{n}"\nbackend = "simulated"\nworld = "{rooms}"\nradio = "{n}"\n'
        "time_scale = 0\n"
        for n in ("r0", "r2")
    )
    loaded, catalog = load(write_config(tmp_path, toml))
    async with BleApp.create(loaded, catalog) as app:
        await app.scan(1.0, ScanFilter())
        await app.connect("A0:00:00:00:00:04")
    lines = [json.loads(line) for line in profile.read_text().splitlines()]
    assert [(x["name"], x.get("radio")) for x in lines] == [("scan", None), ("connect", "r2")]


async def test_mtu_probe_stays_on_the_links_radio(tmp_path):
    """The mtu plugin's probe reconnects at each candidate MTU, on the radio's own backend
    (the one holding the link): the link is measured, kept at the fastest and stays on r0."""
    rooms = WORLDS / "fleet_rooms.toml"
    toml = "[mtu]\nprobe = true\ncandidates = [23, 185]\n" + "".join(
        f'[[radios]]\nname = "{n}"\nbackend = "simulated"\nworld = "{rooms}"\nradio = "{n}"\n'
        "time_scale = 0\n"
        for n in ("r0", "r1", "r2")
    )
    loaded, catalog = load(write_config(tmp_path, toml))
    async with BleApp.create(loaded, catalog) as app:
        await app.scan(1.0, ScanFilter())
        conn, _ = await app.connect("A0:00:00:00:00:02")
        assert conn.radio == "r0" and conn.mtu_by == "asked", conn
        assert any(note.startswith("mtu probe (B/s): 23: ") for note in conn.notes), conn.notes
        assert app.fleet.link_radio["A0:00:00:00:00:02"].name == "r0"
        assert (await app.read("A0:00:00:00:00:02", "fff1")).data == b"\x02"
