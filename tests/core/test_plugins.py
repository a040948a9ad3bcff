"""Plugin loading: built-ins, third-party entry points, isolation between apps, tracing."""

from __future__ import annotations

import sys
import textwrap

import pytest

from mcp_ble.core.app import BleApp
from mcp_ble.core.errors import ConfigError
from mcp_ble.core.models import ScanFilter

from tests.helpers import load, make_app, write_config

THIRD_PARTY = textwrap.dedent(
    '''
    """A third-party plugin, installed as a distribution with an mcp_ble entry point."""
    from pydantic import BaseModel, ConfigDict

    from mcp_ble.core.hookspecs import hookimpl


    class ShortScans(BaseModel):
        model_config = ConfigDict(extra="forbid")
        max_duration_s: float = 0.2


    class ShortScanPlugin:
        settings_model = ShortScans  # the [shortscan] section, as the entry point is named

        def __init__(self):
            self.finished = []

        @hookimpl
        def mcp_ble_scan_plan(self, plan, app):
            limit = self.settings.max_duration_s
            if plan.duration_s > limit:
                plan.duration_s = limit
                plan.note(f"short_scans capped the scan at {limit} s")

        @hookimpl
        async def mcp_ble_scan_finished(self, plan, found, duration_s):
            self.finished.append(found)
    '''
)

BROKEN = "raise ImportError('this plugin needs libfoo')\n"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install a real distribution (dist-info with entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "shortscan_plugin.py").write_text(THIRD_PARTY)
    (site / "broken_plugin.py").write_text(BROKEN)
    info = site / "mcp_ble_shortscan-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mcp-ble-shortscan\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[mcp_ble]\nshortscan = shortscan_plugin:ShortScanPlugin\nbroken = broken_plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("shortscan_plugin", None)
    sys.modules.pop("broken_plugin", None)


def test_builtins_are_in_the_catalog():
    _, catalog = load()
    assert {"simulated", "bleak", "simplepyble"} <= set(catalog.backends)
    assert {"metrics", "retry"} <= set(catalog.plugins)
    assert catalog.section_owner["retry"] == "retry"
    assert catalog.origins["retry"].startswith("built-in")


async def test_third_party_plugin_from_entry_point(installed_plugin, tmp_path):
    _, catalog = load()
    assert "shortscan" in catalog.plugins
    assert "from mcp-ble-shortscan" in catalog.origins["shortscan"]
    app = make_app(tmp_path, 'plugins = ["shortscan"]\n[shortscan]\nmax_duration_s = 0.05\n')
    async with app:
        outcome = await app.scan(5.0, ScanFilter())
        assert outcome.plan.duration_s == 0.05
        assert outcome.plan.notes == ["short_scans capped the scan at 0.05 s"]
        plugin = dict(app.plugins)["shortscan"]
        assert plugin.finished == [outcome.matched]
        hooks = dict(app.plugin_hooks())["shortscan"]
        assert "mcp_ble_scan_plan" in hooks


async def test_available_but_not_enabled_plugin_stays_out(installed_plugin, tmp_path):
    app = make_app(tmp_path, "plugins = []\n[shortscan]\nmax_duration_s = 0.05\n")
    async with app:
        outcome = await app.scan(0.1, ScanFilter())
        assert outcome.plan.duration_s == 0.1
        assert [name for name, _ in app.plugins] == ["backend-simulated"]


def test_plugin_section_validated_like_core_sections(installed_plugin, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'shortscan\.max'"):
        load(write_config(tmp_path, "[shortscan]\nmax = 1\n"))


def test_broken_entry_point_fails_only_when_enabled(installed_plugin, tmp_path):
    loaded, catalog = load(write_config(tmp_path, 'plugins = ["broken"]\n'))
    assert "broken" in catalog.broken
    with pytest.raises(ConfigError, match=r"failed to import: ImportError: this plugin needs"):
        BleApp.create(loaded, catalog)
    loaded, catalog = load(write_config(tmp_path, "plugins = []\n"))
    BleApp.create(loaded, catalog)  # the rest keeps working


async def test_each_app_has_its_own_plugin_instances(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_app(tmp_path / "a")
    second = make_app(tmp_path / "b")
    metrics_a = dict(first.plugins)["metrics"]
    metrics_b = dict(second.plugins)["metrics"]
    assert metrics_a is not metrics_b
    assert first.pm is not second.pm
    async with first, second:
        await first.scan(0.05, ScanFilter())
        assert first.metrics_registry.get_sample_value("ble_discovery_time_seconds_count") == 1
        assert second.metrics_registry.get_sample_value("ble_discovery_time_seconds_count") == 0


async def test_plugins_run_in_the_listed_order(tmp_path):
    from mcp_ble.core.hookspecs import hookimpl

    calls = []

    class First:
        @hookimpl
        def mcp_ble_scan_plan(self, plan):
            calls.append("first")
            plan.duration_s = 0.01

    class Second:
        @hookimpl
        def mcp_ble_scan_plan(self, plan):
            calls.append(("second", plan.duration_s))

    app = make_app(
        tmp_path, 'plugins = ["one", "two"]', extra_plugins={"one": First, "two": Second}
    )
    async with app:
        await app.scan(1.0, ScanFilter())
    assert calls == ["first", ("second", 0.01)]


async def test_trace_hooks_prints_every_call_to_stderr(tmp_path, capsys):
    app = make_app(tmp_path, environ={"MCP_BLE_TRACE_HOOKS": "1"})
    assert app.settings.trace_hooks is True
    async with app:
        await app.scan(0.02, ScanFilter())
    err = capsys.readouterr().err
    assert "[mcp-ble hook] mcp_ble_scan_plan(" in err
    assert "[mcp-ble hook] mcp_ble_scan_finished(" in err
    assert "-> [metrics]" in err


async def test_third_party_backend_selected_by_name(tmp_path):
    """A backend plugin registers exactly like the built-ins and is chosen by `backend =`."""
    from mcp_ble.backends.simulated.backend import SimulatedBackend
    from mcp_ble.backends.simulated.world import load_world
    from mcp_ble.core.hookspecs import hookimpl

    class EchoWorld:
        @hookimpl
        def mcp_ble_register_backends(self, register):
            register("echo", lambda settings, backends: SimulatedBackend(load_world("demo"), 0))

    loaded, catalog = load(
        write_config(tmp_path, 'backend = "echo"\nplugins = []\n'), extra_plugins={"x": EchoWorld}
    )
    app = BleApp.create(loaded, catalog)
    async with app:
        outcome = await app.scan(0.2, ScanFilter(name="HRM"))
        assert [d.name for d in outcome.devices] == ["HRM Strap"]
        assert [name for name, _ in app.plugins] == ["x"]


async def test_failing_event_hook_does_not_break_the_operation(tmp_path, caplog):
    from mcp_ble.core.hookspecs import hookimpl

    class Faulty:
        @hookimpl
        def mcp_ble_scan_finished(self):
            raise RuntimeError("plugin bug")

    # The virtual clock: on the 100x scaled one this scan is 0.5 ms of wall time, and a busy
    # machine let it end before the first advertisement.
    app = make_app(tmp_path, 'plugins = ["faulty"]', extra_plugins={"faulty": Faulty}, time_scale=0)
    async with app:
        outcome = await app.scan(0.05, ScanFilter())
    assert outcome.matched >= 1
    assert "plugin hook mcp_ble_scan_finished failed" in caplog.text
