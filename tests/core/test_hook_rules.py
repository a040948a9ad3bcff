"""The hook rules are enforced when a plugin loads, and hooks run in the settings file's order."""

from __future__ import annotations

import asyncio
import inspect
import sys
import textwrap

import pytest

from mcp_ble.core import hookspecs
from mcp_ble.core.cli import main
from mcp_ble.core.errors import ConfigError, NotPermitted
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter

from tests.helpers import make_app, write_config

MISSPELLED = textwrap.dedent(
    """
    from mcp_ble.core.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def mcp_ble_scan_plann(self, plan):
            plan.duration_s = 0.1
    """
)

ASYNC_METRICS = textwrap.dedent(
    """
    from mcp_ble.core.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        async def mcp_ble_register_metrics(self, registry):
            pass
    """
)


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install a module as a distribution with an ``mcp_ble`` entry point named ``name``."""
    site = tmp_path / "site"
    site.mkdir()
    modules = []

    def _install(name: str, source: str) -> None:
        module = f"rules_{name}"
        (site / f"{module}.py").write_text(source)
        info = site / f"mcp_ble_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mcp-ble-{name}\nVersion: 1\n")
        (info / "entry_points.txt").write_text(f"[mcp_ble]\n{name} = {module}:Plugin\n")
        modules.append(module)

    monkeypatch.syspath_prepend(str(site))
    yield _install
    for module in modules:
        sys.modules.pop(module, None)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            MISSPELLED,
            "plugin 'typo' cannot be loaded: it implements unknown hook 'mcp_ble_scan_plann'; "
            "did you mean 'mcp_ble_scan_plan'?",
        ),
        (
            ASYNC_METRICS,
            "plugin 'typo' cannot be loaded: it implements synchronous hook "
            "'mcp_ble_register_metrics' with async def",
        ),
    ],
)
def test_a_plugin_breaking_a_hook_rule_stops_the_server_with_exit_code_2(
    install, tmp_path, capsys, source, expected
):
    install("typo", source)
    config = write_config(tmp_path, 'backend = "simulated"\nplugins = ["typo"]\n')
    assert main(["serve", "--config", str(config)]) == 2
    lines = capsys.readouterr().err.splitlines()
    [line] = [line for line in lines if "typo" in line]
    assert expected in line, line


def test_a_broken_plugin_that_is_not_enabled_does_not_stop_the_server(install, tmp_path, capsys):
    install("typo", MISSPELLED)
    config = write_config(tmp_path, 'backend = "simulated"\nplugins = []\n')
    assert main(["plugins", "--config", str(config)]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("typo")]
    assert "BROKEN" in row and "mcp_ble_scan_plann" in row


class AsyncCollect:
    @hookimpl
    async def mcp_ble_collect_metrics(self, app):
        pass


class AsyncAdvertisement:
    @hookimpl
    async def mcp_ble_advertisement(self, advertisement):
        pass


class AsyncRetry:
    @hookimpl
    async def mcp_ble_retry_delay(self, operation, error, attempt):
        return 0.1


class Unmarked:
    def mcp_ble_scan_plan(self, plan):
        plan.duration_s = 0.1


class WrapsAPlan:
    @hookimpl(wrapper=True)
    def mcp_ble_scan_plan(self, plan):
        return (yield)


class WrongArgument:
    @hookimpl
    def mcp_ble_scan_plan(self, plan, duration):
        pass


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (AsyncCollect, "synchronous hook 'mcp_ble_collect_metrics' with async def"),
        (AsyncAdvertisement, "synchronous hook 'mcp_ble_advertisement' with async def"),
        (AsyncRetry, "synchronous hook 'mcp_ble_retry_delay' with async def"),
        (Unmarked, "defines 'mcp_ble_scan_plan' without @hookimpl"),
        (WrapsAPlan, "wraps hook 'mcp_ble_scan_plan'"),
        (WrongArgument, "it does not match the hook spec: hookimpl definition: mcp_ble_scan_plan("),
    ],
)
def test_each_rule_is_refused_at_load(tmp_path, plugin, expected):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, 'plugins = ["bad"]', extra_plugins={"bad": plugin})
    assert str(caught.value).startswith("plugin 'bad' cannot be loaded: ")
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_async_hooks_are_exactly_those_documented_as_async():
    documented = {
        name
        for name, spec in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("mcp_ble_")
        and "async" in (spec.__doc__ or "").replace("async def", "")
        and "Synchronous only" not in (spec.__doc__ or "")
    }
    assert documented == hookspecs.MAY_BE_ASYNC


class SlowFirst:
    """An async plan hook that awaits before setting the duration."""

    @hookimpl
    async def mcp_ble_scan_plan(self, plan):
        await asyncio.sleep(0)
        plan.duration_s = 1.0
        plan.note("first set 1.0")


class ClampSecond:
    @hookimpl
    def mcp_ble_scan_plan(self, plan):
        plan.duration_s = min(plan.duration_s, 0.5)
        plan.note(f"second clamped to {plan.duration_s}")


async def test_sync_and_async_implementations_run_in_the_settings_order(tmp_path):
    app = make_app(
        tmp_path,
        'plugins = ["first", "second"]',
        extra_plugins={"first": SlowFirst, "second": ClampSecond},
    )
    async with app:
        outcome = await app.scan(2.0, ScanFilter())
    assert outcome.plan.duration_s == 0.5
    assert outcome.plan.notes == ["first set 1.0", "second clamped to 0.5"]

    (tmp_path / "reversed").mkdir()
    app = make_app(
        tmp_path / "reversed",
        'plugins = ["second", "first"]',
        extra_plugins={"first": SlowFirst, "second": ClampSecond},
    )
    async with app:
        outcome = await app.scan(2.0, ScanFilter())
    assert outcome.plan.duration_s == 1.0


class Refuses:
    @hookimpl
    async def mcp_ble_scan_plan(self, plan):
        raise NotPermitted("scans are off here; ask the operator")


class Buggy:
    @hookimpl
    def mcp_ble_scan_plan(self, plan):
        raise RuntimeError("plugin bug")


class Records:
    def __init__(self):
        self.seen = 0

    @hookimpl
    def mcp_ble_scan_plan(self, plan):
        self.seen += 1


async def test_a_refusal_stops_later_plugins_and_a_bug_does_not(tmp_path, caplog):
    app = make_app(
        tmp_path,
        'plugins = ["buggy", "records"]',
        extra_plugins={"buggy": Buggy, "records": Records},
    )
    async with app:
        await app.scan(0.05, ScanFilter())
        assert dict(app.plugins)["records"].seen == 1  # type: ignore[attr-defined]
    assert "plugin hook mcp_ble_scan_plan failed (plugin 'buggy')" in caplog.text

    (tmp_path / "refuse").mkdir()
    app = make_app(
        tmp_path / "refuse",
        'plugins = ["refuses", "records"]',
        extra_plugins={"refuses": Refuses, "records": Records},
    )
    async with app:
        with pytest.raises(NotPermitted, match="scans are off here"):
            await app.scan(0.05, ScanFilter())
        assert dict(app.plugins)["records"].seen == 0  # type: ignore[attr-defined]


async def test_a_plugin_added_at_run_time_is_held_to_the_same_rules(tmp_path):
    app = make_app(tmp_path, "plugins = []")

    class Late:
        @hookimpl
        def mcp_ble_notificaton(self, data):
            pass

    with pytest.raises(ConfigError, match="plugin 'late' cannot be added: it implements unknown"):
        app.add_plugin("late", Late())
    assert "late" not in dict(app.plugins) and app.pm.get_plugin("late") is None


async def test_tryfirst_moves_an_implementation_to_the_front(tmp_path):
    class Eager:
        @hookimpl(tryfirst=True)
        async def mcp_ble_scan_plan(self, plan):
            await asyncio.sleep(0)
            plan.note("eager")

    app = make_app(
        tmp_path,
        'plugins = ["first", "eager"]',
        extra_plugins={"first": ClampSecond, "eager": Eager},
    )
    async with app:
        outcome = await app.scan(2.0, ScanFilter())
    assert outcome.plan.notes == ["eager", "second clamped to 0.5"]
