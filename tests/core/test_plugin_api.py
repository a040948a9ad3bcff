"""The plugin surface: what hooks see as ``app``, and the built-in plugins keeping to it."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import itertools
from pathlib import Path

import pytest
from pydantic import BaseModel

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.plugin_api import PluginApp

from tests.helpers import make_app

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
SURFACE = {name for name in dir(PluginApp) if not name.startswith("_")}
UART = "F1:22:9B:03:5E:C0"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


def app_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, attribute) of every ``app.<attribute>`` and ``self.app.<attribute>``."""
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id == "app":
            uses.append((node.lineno, node.attr))
        elif isinstance(owner, ast.Attribute) and owner.attr == "app":
            if isinstance(owner.value, ast.Name) and owner.value.id == "self":
                uses.append((node.lineno, node.attr))
    return uses


def test_builtin_plugins_use_only_the_plugin_surface():
    outside = []
    for path in sorted(PLUGINS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        outside += [
            f"{path.name}:{line}: app.{attr}"
            for line, attr in app_uses(tree)
            if attr not in SURFACE
        ]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
                if module.startswith(
                    ("mcp_ble.backends", "mcp_ble.core.app", "mcp_ble.core.server")
                ):
                    outside.append(f"{path.name}:{node.lineno}: imports {module}")
            if isinstance(node, ast.arg) and node.arg == "app" and node.annotation is not None:
                if ast.unparse(node.annotation) != "PluginApp":
                    outside.append(
                        f"{path.name}:{node.lineno}: app typed {ast.unparse(node.annotation)}"
                    )
    assert outside == []


def test_the_surface_check_catches_a_core_attribute():
    tree = ast.parse("def hook(self, app):\n    app.subscriptions.clear()\n    self.app.tracker\n")
    assert [attr for _, attr in app_uses(tree) if attr not in SURFACE] == ["tracker"]
    assert "subscriptions" in SURFACE  # a method of the surface, returning views


class Settings(BaseModel):
    limit: int = 3


class Declares:
    settings_model = Settings

    def __init__(self):
        self.seen = []

    @hookimpl
    def mcp_ble_startup(self, app):
        self.seen.append((type(app).__name__, self.settings))


async def test_settings_are_declared_once_and_injected_validated(tmp_path):
    app = make_app(
        tmp_path,
        'plugins = ["declares"]\n[declares]\nlimit = "7"\n',
        extra_plugins={"declares": Declares},
    )
    plugin = dict(app.plugins)["declares"]
    assert plugin.settings == Settings(limit=7)  # coerced by validation, before any hook
    async with app:
        assert plugin.seen == [("PluginApp", Settings(limit=7))]
    with pytest.raises(Exception, match=r"declares\.limit"):
        make_app(
            tmp_path,
            'plugins = ["declares"]\n[declares]\nlimit = "many"\n',
            extra_plugins={"declares": Declares},
        )


async def test_views_are_snapshots_and_actions_go_through_the_core(tmp_path):
    app = make_app(tmp_path, "plugins = []")
    api = app.api
    async with app:
        await app.scan(2.0, ScanFilter())
        assert api.tracked_devices() >= 1
        assert api.devices_heard_within(60) >= 1
        await app.connect(UART)
        await app.subscribe(UART, NUS_TX)
        [link] = api.links()
        assert (link.address, link.busy, link.active_subscriptions) == (UART, False, 1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            link.address = "x"  # type: ignore[misc]
        [sub] = api.subscriptions(UART)
        assert sub.active and sub.ended_s is None
        assert api.subscriptions("AA:AA:AA:AA:AA:AA") == []
        await api.end_subscription(UART, sub.handle)
        assert api.subscriptions() == []  # nothing was buffered: nothing left to drain
        await app.subscribe(UART, NUS_TX)
        assert await api.release(UART) is True
        [ended] = api.subscriptions()  # ended by the disconnect, kept until drained or dropped
        assert not ended.active and ended.ended_s is not None
        assert api.links() == [] and app.connections == {}
        assert api.drop_ended_subscriptions(older_than_s=0) == 1
        assert api.subscriptions() == [] and app.subscriptions == {}
        assert api.forget_devices_older_than(0) >= 1 and api.tracked_devices() == 0


async def test_every_runs_on_the_backends_clock(tmp_path):
    """At time_scale 0.01 a 5 s interval passes in 50 ms of wall time."""
    app = make_app(tmp_path, "plugins = []", time_scale=0.01)
    stamps: list[float] = []
    async with app:
        app.api.every(5.0, lambda: stamps.append(app.api.now()))
        for _ in range(500):  # 3 calls: 15 s simulated; on the wall clock this would take 15 s
            if len(stamps) >= 3:
                break
            await asyncio.sleep(0.01)
    assert len(stamps) >= 3
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 5.0 for gap in gaps), gaps


async def test_every_does_not_drive_a_virtual_clock(tmp_path):
    """On the virtual clock periodic work fires only as operations move time."""
    app = make_app(tmp_path, "plugins = []", time_scale=0)
    stamps: list[float] = []
    failures = 0

    async def tick():
        nonlocal failures
        stamps.append(app.api.now())
        if len(stamps) == 1:
            failures += 1
            raise RuntimeError("a bug in one call")  # logged; the next call still happens

    async with app:
        start = app.api.now()
        app.api.every(5.0, tick)
        for _ in range(20):
            await asyncio.sleep(0)
        assert stamps == [] and app.api.now() == start
        await app.scan(12.0, ScanFilter())
        assert len(stamps) == 2 and failures == 1
        assert [round(s - start, 6) for s in stamps] == [5.0, 10.0]
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        app.api.every(0, tick)


async def test_ages_count_on_the_backends_clock(tmp_path):
    """On the virtual clock, ten simulated seconds of scanning age a link by ten seconds."""
    app = make_app(tmp_path, "plugins = []", time_scale=0)
    async with app:
        await app.scan(2.0, ScanFilter())
        await app.connect(UART)
        await app.subscribe(UART, NUS_TX)
        await app.scan(10.0, ScanFilter())
        [link] = app.api.links()
        [sub] = app.api.subscriptions()
    assert 10.0 <= link.idle_s < 10.5 and 10.0 <= sub.undrained_s < 10.5
