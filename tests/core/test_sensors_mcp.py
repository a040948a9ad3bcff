"""Sensor readings from advertisements over MCP: ``ble_sensors``, the readings in ``ble_scan`` and
``ble_devices``, and the ``ble://sensors`` resource with its "resource updated".

One MCP session for the whole module (the SDK's client, legacy era, so it can subscribe): a world
broadcasts every vector of tests/sensor_vectors.py (from each parser library's own tests), and
the real decoder plugins read them, encrypted BTHome and Xiaomi with the keys from settings. The
clock is the frozen virtual one: simulated time moves only while a call waits on the radio, so
the steps below follow one timeline (the tests run in file order):

- t 0: the first ``ble_sensors`` finds nothing known and listens for itself; a scan to t 3;
- ``CHANGER`` advertises payload A for 10 s, then payload B for 10 s (and so on);
- ``FADING`` goes out of range at 14 s; with ``server.recent_s = 20`` its readings age out.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from mcp_ble.core.server import build_server

from tests.helpers import error_info, make_app
from tests.sensor_vectors import VECTORS, Vector, settings_toml
from tests.sensor_world import CHANGER, FADING, SPLIT, world_text

RECENT_S = 20


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def text_of(value: Any, unit: str | None) -> str:
    """What a reading shows: the value (a whole float without '.0'), a space, the unit."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"{value} {unit}" if unit else str(value)


def expected(vector: Vector, measurement: str | None = None) -> dict[str, str]:
    """The readings ``vector`` must show (only those of ``measurement`` if given)."""
    return {
        key: text_of(value, unit)
        for key, (kind, value, unit) in vector.expected.items()
        if measurement in (None, kind)
    }


class Session:
    def __init__(self, client: Client, app: Any) -> None:
        self.client = client
        self.app = app
        self.updates: list[str] = []

    async def ok(self, tool: str, **args: Any) -> Any:
        result = await self.client.call_tool(tool, args)
        assert not result.is_error, result.content[0].text
        return result.structured_content

    async def error(self, tool: str, **args: Any) -> tuple[dict[str, Any], str]:
        result = await self.client.call_tool(tool, args)
        return error_info(result), result.content[0].text

    async def settle(self, wall_s: float = 0.3) -> None:
        """Let coalesced "resource updated" messages arrive (they wait ~50 ms of wall time)."""
        await asyncio.sleep(wall_s)


@pytest.fixture(scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Session]:
    folder: Path = tmp_path_factory.mktemp("sensors")
    world = folder / "sensors.toml"
    world.write_text(world_text(), encoding="utf-8")
    # The server does not listen for the subscriber by itself here (tests/core/
    # test_sensor_watch.py tests that): simulated time moves only with the calls below.
    toml = settings_toml() + f"[server]\nrecent_s = {RECENT_S}\nsensors_listen = false\n"
    app = make_app(folder, toml, world=world, time_scale=0)
    holder: list[Session] = []

    async def on_message(message: Any) -> None:
        uri = getattr(getattr(message, "params", None), "uri", None)
        if uri is not None and holder:
            holder[0].updates.append(str(uri))

    async with Client(build_server(app), mode="legacy", message_handler=on_message) as client:
        holder.append(Session(client, app))
        yield holder[0]


async def test_one_call_listens_when_nothing_is_known(session: Session) -> None:
    app = session.app
    assert app.now() == 0
    found = await session.ok("ble_sensors", measurement="temperature", name="changer")
    # Nothing was known: it listened for itself, until the named sensor reported one (it
    # advertises every 200 ms), not for the whole listen_s = 3.
    [changer] = found["sensors"]
    assert changer["readings"] == {"temperature": "25.06 °C"} and changer["name"] == "Changer"
    assert 0 < found["listened_s"] <= 0.25 and app.now() == pytest.approx(
        found["listened_s"], abs=0.01
    )
    await session.ok("ble_scan", duration_s=3 - app.now())
    found = await session.ok("ble_sensors", measurement="temperature")
    assert "listened_s" not in found
    temperatures = {s["address"]: s["readings"] for s in found["sensors"]}
    for vector in VECTORS:
        assert temperatures.get(vector.address, {}) == expected(vector, "temperature"), vector.id
    assert temperatures[CHANGER] == {"temperature": "25.06 °C"}


async def test_every_format_gives_its_values_and_units(session: Session) -> None:
    everything = await session.ok("ble_sensors")
    assert "listened_s" not in everything  # known now: answered from what was heard
    by_address = {s["address"]: s for s in everything["sensors"]}
    formats = set()
    for vector in VECTORS:
        sensor = by_address[vector.address]
        assert sensor["readings"] == expected(vector), vector.id
        assert sensor.get("name") == vector.name and 0 <= sensor["s_ago"] < 1, vector.id
        formats.add(vector.id)
    encrypted = {v.id for v in VECTORS if v.key}
    assert {"bthome_v2", "ibeacon"} <= formats and len(encrypted) >= 2
    assert any(v.plugin == "eddystone" for v in VECTORS)
    vendors = {v.plugin for v in VECTORS} - {"bthome", "ibeacon", "eddystone"}
    assert len(vendors) >= 5, vendors
    ages = [s["s_ago"] for s in everything["sensors"]]
    assert ages == sorted(ages)  # most recently heard first


async def test_filters_by_measurement_and_name(session: Session) -> None:
    humid = await session.ok("ble_sensors", measurement=" Humidity ")
    shown = {s["address"]: s["readings"] for s in humid["sensors"]}
    wanted = {v.address: expected(v, "humidity") for v in VECTORS if expected(v, "humidity")}
    assert shown == {**wanted, CHANGER: {"humidity": "50.55 %"}, FADING: {"humidity": "45 %"}}
    govee = await session.ok("ble_sensors", name="gvh5075")
    assert [s["name"] for s in govee["sensors"]] == ["GVH5075_2762"]
    [both] = (await session.ok("ble_sensors", name="changer", measurement="humidity"))["sensors"]
    assert both["address"] == CHANGER and both["readings"] == {"humidity": "50.55 %"}
    before = session.app.now()
    unheard = await session.ok("ble_sensors", measurement="ozone", listen_s=0.5)
    assert unheard == {"sensors": [], "listened_s": 0.5}  # a decoder may give it: it listened
    assert session.app.now() - before == pytest.approx(0.5, abs=0.01)
    before = session.app.now()
    info, text = await session.error("ble_sensors", measurement="temprature")
    assert info["code"] == "invalid_input" and session.app.now() == before  # no listening
    assert text.startswith("invalid_input: measurement 'temprature' is not one"), text
    assert re.search(
        r"Did you mean 'temperature'\? (\d{3}) names are known; leave measurement", text
    )
    assert len(text) < 200 and "keg_type" not in text, text  # the closest, not every name
    for alias, meant in {
        "co2": "carbon_dioxide",
        "temp": "temperature",
        "humid": "humidity",
    }.items():
        info, text = await session.error("ble_sensors", measurement=alias)
        assert f"Did you mean '{meant}'" in text, text
    none = await session.ok("ble_sensors", name="no such sensor", listen_s=0)
    assert none == {"sensors": []}  # listen_s=0: nothing known, and it did not listen


async def test_scan_and_devices_show_the_latest_readings(session: Session) -> None:
    scan = await session.ok("ble_scan", duration_s=1.0, name="changer")
    [changer] = scan["devices"]
    assert changer["readings"] == {"temperature": "25.06 °C", "humidity": "50.55 %"}
    assert "service_data" not in changer  # the readings stand for its hex (test_sensors_raw.py)
    devices = {d["address"]: d for d in (await session.ok("ble_devices"))["devices"]}
    for vector in VECTORS:
        assert devices[vector.address]["readings"] == expected(vector), vector.id
        # Every plugin names the entry it read: no hex beside value readings; a device whose
        # only reading is its encryption state keeps its bytes.
        raw = {"service_data", "manufacturer_data"} & set(devices[vector.address])
        assert bool(raw) == (set(vector.expected) == {"encryption"}), vector.id


async def test_the_resource_is_updated_when_readings_change_and_not_when_they_repeat(
    session: Session,
) -> None:
    client, app = session.client, session.app
    body = json.loads((await client.read_resource("ble://sensors")).contents[0].text)
    listed = await session.ok("ble_sensors")
    assert [s["address"] for s in body["sensors"]] == [s["address"] for s in listed["sensors"]]
    assert body["sensors"][0]["readings"] == listed["sensors"][0]["readings"]
    await session.settle()  # what changed before (the first readings) has been published
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await client.subscribe_resource("ble://sensors")
    assert app.now() < 8
    await session.ok("ble_scan", duration_s=8 - app.now())  # every sensor repeats itself
    await session.settle()
    assert session.updates == []  # no flood: hundreds of advertisements, no reading changed
    await session.ok("ble_scan", duration_s=4.0)  # CHANGER switches to payload B at 10 s
    await session.settle()
    assert 1 <= len(session.updates) <= 2 and set(session.updates) == {"ble://sensors"}
    changer = await session.ok("ble_sensors", name="changer")
    assert changer["sensors"][0]["readings"] == {"temperature": "21.5 °C", "humidity": "45 %"}
    # SPLIT sent its humidity from 9 s on; its temperature, last heard before 9 s, says so
    [split] = (await session.ok("ble_sensors", name="split"))["sensors"]
    assert split["address"] == SPLIT and split["readings"] == {
        "humidity": "50.55 %",
        "temperature": "25.06 °C, 3 s earlier",
    }
    session.updates.clear()
    await session.ok("ble_scan", duration_s=1.5)  # payload B again and again
    await session.settle()
    assert session.updates == []


async def test_readings_age_out_after_recent_s(session: Session) -> None:
    app = session.app
    assert app.now() < 14  # FADING still advertises
    assert (await session.ok("ble_sensors", name="fading"))["sensors"]
    await session.ok("ble_scan", duration_s=14 + RECENT_S + 1 - app.now())
    gone = await session.ok("ble_sensors", name="fading", listen_s=1)
    assert gone == {"sensors": [], "listened_s": 1.0}  # not heard within recent_s, nor now
    others = {s["address"] for s in (await session.ok("ble_sensors"))["sensors"]}
    assert FADING not in others and {v.address for v in VECTORS} <= others
    assert FADING not in {d["address"] for d in (await session.ok("ble_devices"))["devices"]}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ({"measurement": ""}, ["measurement '' is not a measurement name", "'temperature'"]),
        ({"measurement": "temp erature"}, ["is not a measurement name", "lower snake case"]),
        ({"measurement": "t" * 500}, ["(500 characters)"]),
        ({"measurement": "\udc80"}, ["measurement"]),
        ({"name": "n" * 300}, ["longer than any device name"]),
        ({"listen_s": -1}, ["listen_s"]),
        ({"listen_s": 31}, ["listen_s"]),
        ({"listen_s": "soon"}, ["listen_s"]),
        ({"measurement": 5}, ["measurement"]),
    ],
)
async def test_bad_inputs_are_invalid_input_with_a_hint(
    session: Session, args: dict[str, Any], fragments: list[str]
) -> None:
    info, text = await session.error("ble_sensors", **args)
    assert info["code"] == "invalid_input" and info.get("hint"), text
    for fragment in fragments:
        assert fragment in text, text
    assert (await session.ok("ble_sensors", listen_s=0))["sensors"]  # still serving


async def test_without_a_decoder_the_answer_says_how_to_enable_one(tmp_path: Path) -> None:
    app = make_app(tmp_path, time_scale=0)  # the shipped plugins: no decoder among them
    async with Client(build_server(app)) as client:
        info = error_info(await client.call_tool("ble_sensors", {}))
        text = (await client.call_tool("ble_sensors", {"measurement": "temperature"})).content
    assert info["code"] == "config_error" and app.now() == 0  # it did not listen in vain
    assert "No advertisement decoder plugin is enabled" in text[0].text
    assert "mcp-ble[decoders]" in info["hint"] and '"decoders"]' in info["hint"], info


async def test_the_2026_listen_stream_hears_readings_change(tmp_path: Path) -> None:
    """On protocol 2026-07-28 the update comes through subscriptions/listen."""
    world = tmp_path / "sensors.toml"
    world.write_text(world_text(), encoding="utf-8")
    app = make_app(tmp_path, settings_toml(["bthome"]), world=world, time_scale=0)
    async with Client(build_server(app)) as client:
        async with client.listen(resource_subscriptions=["ble://sensors"]) as stream:
            scan = asyncio.ensure_future(client.call_tool("ble_scan", {"duration_s": 1.0}))
            async with asyncio.timeout(10):
                async for event in stream:
                    assert event.uri == "ble://sensors"
                    break
            await scan
        body = json.loads((await client.read_resource("ble://sensors")).contents[0].text)
    assert CHANGER in {s["address"] for s in body["sensors"]}


async def test_listening_shares_the_radio_with_a_concurrent_scan(tmp_path: Path) -> None:
    world = tmp_path / "sensors.toml"
    world.write_text(world_text(), encoding="utf-8")
    app = make_app(tmp_path, settings_toml(["bthome"]), world=world, time_scale=0)
    async with Client(build_server(app)) as client:
        scan, sensors = await asyncio.gather(
            client.call_tool("ble_scan", {"duration_s": 2.0}),
            client.call_tool("ble_sensors", {"name": "nobody", "listen_s": 1.5}),
        )
    assert not scan.is_error and sensors.structured_content == {"sensors": [], "listened_s": 1.5}
    # Both listened at once, on one radio: 2 simulated seconds in all, not 2 + 1.5 queued.
    assert app.scans_run == 2 and app.now() == pytest.approx(2.0, abs=0.05)


async def test_an_explicit_listen_s_listens_though_readings_are_recent(session: Session) -> None:
    """Not given, listen_s answers from recent readings; given, it listens for a fresh one."""
    app = session.app
    before = (await session.ok("ble_sensors", name="changer", listen_s=1))["sensors"][0]
    assert before["s_ago"] < 0.5
    await app.radio.sleep(10)  # nothing heard for 10 s; CHANGER switched payload meanwhile
    known = await session.ok("ble_sensors", name="changer")
    assert "listened_s" not in known and known["sensors"][0]["s_ago"] >= 10
    assert known["sensors"][0]["readings"] == before["readings"]
    fresh = await session.ok("ble_sensors", name="changer", listen_s=5)
    assert 0 < fresh["listened_s"] <= 0.25  # ended by the named device's report, not after 5 s
    [changer] = fresh["sensors"]
    assert changer["s_ago"] < 0.5 and changer["readings"] != before["readings"], changer
