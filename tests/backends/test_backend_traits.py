"""Backends declare their traits at registration; doctor and auto read them, naming no backend."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydantic import BaseModel

from mcp_ble.backends.auto.backend import AutoBackend
from mcp_ble.backends.simulated.backend import SimulatedBackend
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core.app import BleApp
from mcp_ble.core.backend import Backend
from mcp_ble.core.errors import BackendUnavailable, ConfigError
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.tooling.doctor import diagnose
from mcp_ble.core.traits import BackendTraits, Dependency, Finding

from tests.helpers import load, write_config

CHECKS_RUN: list[str] = []


def lab_check() -> list[Finding]:
    CHECKS_RUN.append("lab")
    return [Finding("system", "lab bench power", "ok", "12 V")]


class NoRadio(SimulatedBackend):
    """Fails to start the way a real backend does on a machine without an adapter."""

    async def start(self) -> None:
        raise BackendUnavailable("no adapter in this lab", "plug one in")


def _world(settings: Any, backends: Any) -> Backend:
    return SimulatedBackend(load_world("demo"), 0.01)


class LabBackends:
    """Third-party backends, each declaring its traits."""

    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        register(
            "labsim",
            _world,
            traits=BackendTraits(
                simulated=True,
                dependencies=(Dependency("pluggy", "lab plugin"),),
                check=lab_check,
            ),
        )
        register(
            "labradio",
            lambda settings, backends: NoRadio(load_world("demo"), 0.01),
            traits=BackendTraits(
                dependencies=(Dependency("lab-driver-not-installed", "lab radio", extra="lab"),),
                check=lab_check,
            ),
        )
        register("labdongle", _world, traits=BackendTraits(takes_adapter=True))
        register(
            "labauto",
            lambda settings, backends: AutoBackend(
                [
                    ("labradio", lambda: backends.build("labradio")),
                    ("labsim", lambda: backends.build("labsim")),
                ],
                {"labsim"},
                io.StringIO(),
            ),
            traits=BackendTraits(composes=lambda settings: ["labradio", "labsim"]),
        )


async def test_doctor_reads_what_backends_declare(tmp_path):
    CHECKS_RUN.clear()
    config = write_config(tmp_path, 'backend = "labauto"\nplugins = []\n')
    loaded, catalog = load(config, extra_plugins={"lab": LabBackends})
    diagnosis = await diagnose(loaded, catalog, timeout_s=5)
    checks = {(c.area, c.name): c for c in diagnosis.checks}
    assert CHECKS_RUN == ["lab"]  # declared by two backends, run once
    assert checks[("system", "lab bench power")].status == "ok"
    assert checks[("packages", "pluggy")].status == "ok"
    missing = checks[("packages", "lab-driver-not-installed")]
    assert missing.status == "skipped" and "not installed" in missing.detail  # optional extra
    assert checks[("backends", "labdongle")].status == "skipped"  # takes the adapter: not probed
    assert ("backends", "labauto") not in checks  # composite: judged through its parts
    assert checks[("backends", "labsim")].status == "ok"
    assert "labsim" not in diagnosis.real_radio  # declared simulated
    verdict = checks[("selected", "labauto")]
    assert verdict.status == "ok"
    assert verdict.detail.startswith("will serve the SIMULATED devices of labsim")
    assert verdict.fix == 'set backend = "labradio" to require it'
    assert 'backend = "labsim"' in diagnosis.summary


def test_traits_must_be_backend_traits(tmp_path):
    class Wrong:
        @hookimpl
        def mcp_ble_register_backends(self, register: Any) -> None:
            register("wrong", _world, traits={"simulated": True})

    _, catalog = load(extra_plugins={"wrong": Wrong})  # the others still load
    assert "pass a mcp_ble.core.traits.BackendTraits" in catalog.broken["wrong"]
    assert "wrong" not in catalog.backends


def make(tmp_path, toml: str) -> BleApp:
    loaded, catalog = load(write_config(tmp_path, toml), extra_plugins={"lab": LabBackends})
    return BleApp.create(loaded, catalog)


async def test_auto_composes_backends_by_name_and_keeps_their_clock(tmp_path):
    app = make(
        tmp_path,
        'backend = "auto"\nplugins = []\n[backends.auto]\norder = ["labradio", "simulated"]\n'
        "[backends.simulated]\ntime_scale = 0.01\n",
    )
    async with app:
        info = app.radio.info()
        assert info.simulated and "labradio: no adapter in this lab" in info.details["selected_by"]
        outcome = await app.scan(5.0, ScanFilter())
    # 5 s of simulated time (50 ms of wall time): the scan reports the backend's seconds
    assert 5.0 <= outcome.duration_s < 5.5, outcome.duration_s


async def test_auto_with_an_unknown_backend_name_says_which_exist(tmp_path):
    app = make(tmp_path, 'backend = "auto"\nplugins = []\n[backends.auto]\norder = ["nope"]\n')
    with pytest.raises(ConfigError, match="backend 'nope' is not a known backend; available: "):
        await app.start()


async def test_auto_when_nothing_starts_names_every_reason(tmp_path):
    app = make(tmp_path, 'backend = "auto"\nplugins = []\n[backends.auto]\norder = ["labradio"]\n')
    with pytest.raises(BackendUnavailable, match=r"no backend could start \(labradio: no adapter"):
        await app.start()


def test_auto_order_is_validated(tmp_path):
    for order, message in (("[]", "at least one"), ('["auto"]', "cannot try itself")):
        with pytest.raises(ConfigError, match=message):
            load(write_config(tmp_path, f"[backends.auto]\norder = {order}\n"))


async def test_auto_shows_the_chosen_backends_radio_health(tmp_path):
    app = make(
        tmp_path,
        'backend = "auto"\nplugins = []\n[backends.auto]\norder = ["labradio", "labsim"]\n',
    )
    async with app:
        auto = app.radio
        assert isinstance(auto, AutoBackend)
        assert auto.health is auto.active.health and auto.health.state == "ready"
        auto.active.radio_lost("adapter unplugged")
        assert auto.health.state != "ready"
        assert app.api.radio_state() != "ready"


class NeedsAValue:
    class Settings(BaseModel):
        path: str  # no default: would fail every settings load, plugin enabled or not

    settings_model = Settings


class RegistersTwice:
    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        register("labsim", _world)


class RaisesInRegistration:
    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        raise RuntimeError("driver missing")


@pytest.mark.parametrize(
    ("plugin", "why"),
    [
        (NeedsAValue, "its settings_model (Settings) has settings without a default: path"),
        (RegistersTwice, "it registers backend 'labsim', which plugin 'lab' already registered"),
        (
            RaisesInRegistration,
            "its mcp_ble_register_backends failed: RuntimeError: driver missing",
        ),
    ],
)
def test_a_broken_plugin_is_kept_out_and_the_rest_loads(tmp_path, plugin, why):
    loaded, catalog = load(extra_plugins={"lab": LabBackends, "bad": plugin})
    assert catalog.broken["bad"].startswith(why)
    assert "bad" not in catalog.plugins and catalog.backends["labsim"].plugin == "lab"
    assert loaded.settings.backend  # the settings still load
    config = write_config(tmp_path, 'plugins = ["bad"]\n')
    loaded, catalog = load(config, extra_plugins={"lab": LabBackends, "bad": plugin})
    with pytest.raises(ConfigError, match="plugin 'bad' cannot be loaded: it"):
        BleApp.create(loaded, catalog)
