"""`mcp-ble doctor`: what runs here, whether an adapter answers, and what to do otherwise."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from bumble.link import LocalLink

from mcp_ble.backends.bleak.errors import DBUS_SOCKET
from mcp_ble.backends.bumble.backend import BumbleBackend
from mcp_ble.core.backend import Backend
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.tooling.doctor import REAL_RADIO_HINT, diagnose, render

from tests.helpers import load, write_config
from tests.testbed.link import opener

CLI = [sys.executable, "-m", "mcp_ble.core.cli"]
NO_DBUS = pytest.mark.skipif(DBUS_SOCKET.exists(), reason="this machine may have a real adapter")


def checks_by_name(diagnosis: Any) -> dict[str, Any]:
    return {(c.area, c.name): c for c in diagnosis.checks}


@NO_DBUS
async def test_a_machine_without_radio_is_told_so_and_pointed_to_simulated():
    loaded, catalog = load()
    diagnosis = await diagnose(loaded, catalog)
    checks = checks_by_name(diagnosis)
    bleak = checks[("backends", "bleak")]
    assert bleak.status == "problem" and "D-Bus" in bleak.detail and "bluez" in bleak.fix.lower()
    assert checks[("backends", "simulated")].status == "ok"
    assert checks[("system", "D-Bus system bus")].status == "problem"
    verdict = checks[("selected", "auto")]
    assert verdict.status == "ok" and "SIMULATED" in verdict.detail
    assert diagnosis.real_radio == [] and diagnosis.summary.startswith(REAL_RADIO_HINT)
    text = render(diagnosis)
    assert 'backend = "simulated"' in text and "fix:" in text


async def test_a_missing_extra_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "simplepyble", None)  # an import of it now fails
    loaded, catalog = load(write_config(tmp_path, 'backend = "simplepyble"'))
    diagnosis = await diagnose(loaded, catalog)
    verdict = checks_by_name(diagnosis)[("selected", "simplepyble")]
    assert verdict.status == "problem"
    assert "pip install 'mcp-ble[simplepyble]'" in verdict.fix


class LinkRadio:
    """A plugin whose backend is a real bumble stack on a LocalLink (a radio that answers)."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        hang = self.hang

        def create(settings: Any, app: Any) -> Backend:
            backend = BumbleBackend("link:doctor", open_transport=opener(LocalLink()))
            if hang:

                async def never() -> None:
                    await asyncio.sleep(3600)

                backend.start = never  # type: ignore[method-assign]
            return backend

        register("linkradio", create)


async def test_an_answering_adapter_is_reported(tmp_path):
    config = write_config(tmp_path, 'backend = "linkradio"')
    loaded, catalog = load(config, extra_plugins={"linkradio": LinkRadio()})
    diagnosis = await diagnose(loaded, catalog)
    checks = checks_by_name(diagnosis)
    assert checks[("backends", "linkradio")].status == "ok"
    assert "adapter answered" in checks[("backends", "linkradio")].detail
    assert checks[("selected", "linkradio")].status == "ok"
    assert diagnosis.selected_ok and diagnosis.real_radio == ["linkradio"]
    assert "linkradio" in diagnosis.summary


async def test_a_backend_that_hangs_is_given_up_on(tmp_path):
    config = write_config(tmp_path, 'backend = "linkradio"')
    loaded, catalog = load(config, extra_plugins={"linkradio": LinkRadio(hang=True)})
    diagnosis = await diagnose(loaded, catalog, timeout_s=0.2)
    check = checks_by_name(diagnosis)[("backends", "linkradio")]
    assert check.status == "problem" and "within 0.2 s" in check.detail
    assert not diagnosis.selected_ok


def test_bumble_is_not_probed_unless_selected():
    async def run() -> Any:
        loaded, catalog = load()
        return await diagnose(loaded, catalog)

    diagnosis = asyncio.run(run())
    assert checks_by_name(diagnosis)[("backends", "bumble")].status == "skipped"


@NO_DBUS
def test_doctor_command_exit_codes_and_json(tmp_path):
    ok = subprocess.run(
        [*CLI, "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["selected"] == "auto" and report["real_radio"] == []
    failing = subprocess.run(
        [*CLI, "doctor", "--backend", "bleak"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert failing.returncode == 1
    assert "D-Bus" in failing.stdout and "Traceback" not in failing.stderr


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("simplepyble", "pip install 'mcp-ble[simplepyble]'"),
        ("bumble", "tcp-client:127.0.0.1:9"),
    ],
)
def test_serve_with_a_backend_that_cannot_start_exits_2_fast(tmp_path, backend, expected):
    # Port 9 (discard) is closed here: the TCP transport is refused at once.
    toml = f'backend = "{backend}"\n[backends.bumble]\ntransport = "tcp-client:127.0.0.1:9"\n'
    env_block = {"simplepyble": {"PYTHONPATH": str(tmp_path)}}.get(backend, {})
    if backend == "simplepyble":  # make sure the extra is absent even where it is installed
        (tmp_path / "simplepyble.py").write_text("raise ImportError('absent', name='simplepyble')")
    proc = subprocess.run(
        [*CLI, "serve", "--config", str(write_config(tmp_path, toml))],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env_block},
    )
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
