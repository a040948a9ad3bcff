"""Subscribing to ``ble://sensors`` alone brings updates: while a client subscribes, the server
listens for advertisements itself (core/sensor_watch.py), through the shared scan broker, and
stops when the last subscriber unsubscribes, closes its listen stream or ends its session.

The sensor world of tests/sensor_world.py on the virtual clock; no tool is called to scan.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from mcp_ble.core.sensor_watch import SensorWatch
from mcp_ble.core.server import build_server

from tests.helpers import make_app
from tests.sensor_vectors import settings_toml
from tests.sensor_world import CHANGER, world_text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sensor_app(tmp_path: Path, toml: str = "") -> Any:
    world = tmp_path / "sensors.toml"
    world.write_text(world_text(), encoding="utf-8")
    return make_app(tmp_path, settings_toml(["bthome"]) + toml, world=world)


def watch_of(app: Any) -> SensorWatch:
    watch = app.pm.get_plugin("sensor-watch")
    assert isinstance(watch, SensorWatch)
    return watch


async def until(condition: Callable[[], bool], wall_s: float = 10.0) -> None:
    """Poll ``condition`` (state of the server's tasks: there is no event to wait on)."""
    for _ in range(int(wall_s * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time allowed")


async def test_a_legacy_subscriber_alone_gets_updates_until_it_leaves(tmp_path: Path) -> None:
    # One place for scans: the listening must not take it (the ble_scan below would wait).
    app = sensor_app(tmp_path, "[server]\nmax_concurrent_scans = 1\n")
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        uri = getattr(getattr(message, "params", None), "uri", None)
        if uri is not None:
            updates.append(str(uri))

    async with Client(build_server(app), mode="legacy", message_handler=on_message) as client:
        watch = watch_of(app)
        assert not watch.listening and not app.scanner.scanning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource("ble://sensors")
        await until(lambda: "ble://sensors" in updates)  # nobody called a tool
        assert watch.listening and app.scans_run == 0
        body = json.loads((await client.read_resource("ble://sensors")).contents[0].text)
        assert CHANGER in {s["address"] for s in body["sensors"]}
        assert not app.scanner.places.locked()  # the listening holds no place for scans
        # A caller's scan shares the radio with the listening and keeps its own length.
        scan = await client.call_tool("ble_scan", {"duration_s": 1.0})
        assert not scan.is_error and scan.structured_content["duration_s"] == pytest.approx(1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.unsubscribe_resource("ble://sensors")
        await until(lambda: not app.scanner.scanning)  # the last subscriber left: radio idle
        assert not watch.listening and not watch.holders and watch.failures == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource("ble://sensors")
        assert watch.listening
    # The session ended without unsubscribing: what it held is released.
    assert not watch.holders and not watch.listening


async def test_a_listen_stream_alone_gets_updates_while_it_is_open(tmp_path: Path) -> None:
    """Protocol 2026-07-28: a subscriptions/listen stream naming ble://sensors."""
    app = sensor_app(tmp_path)
    async with Client(build_server(app)) as client:
        watch = watch_of(app)
        async with client.listen(resource_subscriptions=["ble://sensors"]) as stream:
            assert watch.listening
            async with asyncio.timeout(10):
                async for event in stream:
                    assert event.uri == "ble://sensors"
                    break
            assert app.scans_run == 0
        await until(lambda: not watch.listening and not app.scanner.scanning)
        # A stream for other things does not make the server listen.
        async with client.listen(tools_list_changed=True):
            assert not watch.listening


async def test_it_does_not_listen_when_the_settings_say_so(tmp_path: Path) -> None:
    app = sensor_app(tmp_path, "[server]\nsensors_listen = false\n")
    async with Client(build_server(app), mode="legacy") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource("ble://sensors")
        watch = watch_of(app)
        assert watch.holders and not watch.listening and not app.scanner.scanning
