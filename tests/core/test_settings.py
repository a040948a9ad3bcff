"""Settings: sources and their precedence, provenance, and clear errors for every bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mcp_ble.core.cli import main
from mcp_ble.core.errors import ConfigError
from mcp_ble.core.settings import default_config_path

from tests.helpers import load, write_config


def test_defaults_come_from_the_shipped_file():
    loaded, _ = load()
    s = loaded.settings
    assert loaded.config_path == default_config_path()
    assert s.backend == "auto"
    assert s.plugins == [
        *("metrics", "retry", "pool", "listeners", "cleanup", "adaptive_scan", "mtu", "sig")
    ]
    assert s.section("retry").max_attempts == 3
    assert s.backend_settings("simulated").world == "demo"


def test_precedence_file_then_env_then_flags(tmp_path):
    config = write_config(
        tmp_path,
        'plugins = ["retry"]\n[retry]\nmax_attempts = 5\ninitial_delay_s = 1.5\n'
        "[server]\nnotification_buffer = 10\n",
    )
    env = {"MCP_BLE_RETRY__MAX_ATTEMPTS": "7", "MCP_BLE_SERVER__NOTIFICATION_BUFFER": "20"}
    loaded, _ = load(config, {"plugins": "metrics"}, env)
    s = loaded.settings
    assert s.plugins == ["metrics"]  # flag beats file
    assert s.section("retry").max_attempts == 7  # env beats file
    assert s.section("retry").initial_delay_s == 1.5  # file beats default, merged per key
    assert s.section("retry").multiplier == 2.0  # default
    assert s.server.notification_buffer == 20
    assert loaded.origin("plugins") == "flag"
    assert loaded.origin("retry.max_attempts") == "env MCP_BLE_RETRY__MAX_ATTEMPTS"
    assert loaded.origin("retry.initial_delay_s") == str(config)
    assert loaded.origin("retry.multiplier") == "default"


def test_env_selects_backend_and_lists(tmp_path):
    loaded, _ = load(
        write_config(tmp_path, ""),
        environ={"MCP_BLE_BACKEND": "bleak", "MCP_BLE_PLUGINS": "retry, metrics"},
    )
    assert loaded.settings.backend == "bleak"
    assert loaded.settings.plugins == ["retry", "metrics"]
    loaded, _ = load(write_config(tmp_path, ""), environ={"MCP_BLE_PLUGINS": '["retry"]'})
    assert loaded.settings.plugins == ["retry"]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[retry]\nmax_atempts = 3\n", "unknown key 'retry.max_atempts'"),
        ("[retry]\nmax_atempts = 3\n", "valid keys here: "),
        ("colour = 'blue'\n", "unknown key 'colour'"),
        ("[retry]\nmax_attempts = 'three'\n", "retry.max_attempts = 'three'"),
        ("[retry]\nmax_attempts = 0\n", "greater than or equal to 1"),
        ("[server]\nnotification_buffer = -1\n", "server.notification_buffer"),
        ("[backends.simulated]\nwrld = 'demo'\n", "unknown key 'backends.simulated.wrld'"),
        ("[backends.nosuch]\nx = 1\n", "unknown key 'backends.nosuch'"),
        ("backend = [\n", "invalid TOML"),
    ],
)
def test_file_errors_name_the_file_and_key(tmp_path, toml, expected):
    config = write_config(tmp_path, toml)
    with pytest.raises(ConfigError) as err:
        load(config)
    assert expected in str(err.value)
    assert str(config) in str(err.value)


def test_env_errors_name_the_variable(tmp_path):
    config = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as err:
        load(config, environ={"MCP_BLE_BACKND": "bleak"})
    assert "MCP_BLE_BACKND" in str(err.value) and "backend" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(config, environ={"MCP_BLE_RETRY__MAX_ATTEMPTS": "many"})
    assert "environment variable MCP_BLE_RETRY__MAX_ATTEMPTS" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(config, environ={"MCP_BLE_RETRY__OPERATIONS": "[not json"})
    assert "MCP_BLE_RETRY__OPERATIONS" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "nope.toml")
    assert "nope.toml: settings file not found" in str(err.value)


def test_unknown_backend_and_plugin_are_clear(tmp_path):
    from mcp_ble.core.app import BleApp

    loaded, catalog = load(write_config(tmp_path, 'backend = "radio9000"\n'))
    with pytest.raises(ConfigError, match="'radio9000' is not a known backend; available: "):
        BleApp.create(loaded, catalog)
    loaded, catalog = load(write_config(tmp_path, 'plugins = ["retyr"]\n'))
    with pytest.raises(ConfigError, match="'retyr' is not an installed plugin; available: "):
        BleApp.create(loaded, catalog)
    loaded, catalog = load(write_config(tmp_path, 'plugins = ["retry", "retry"]\n'))
    with pytest.raises(ConfigError, match="listed twice"):
        BleApp.create(loaded, catalog)


def test_cli_exit_code_2_without_traceback(tmp_path):
    config = write_config(tmp_path, "[retry]\nmax_atempts = 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_ble.core.cli", "config", "show", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown key 'retry.max_atempts'" in proc.stderr
    assert str(config) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_show_prints_sources(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, "[retry]\nmax_attempts = 4\n")
    monkeypatch.setenv("MCP_BLE_SERVER__RECENT_S", "60")
    assert main(["config", "show", "--config", str(config), "--backend", "simulated"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert lines["retry.max_attempts"].endswith(str(config))
    assert "4" in lines["retry.max_attempts"]
    assert lines["server.recent_s"].endswith("env MCP_BLE_SERVER__RECENT_S")
    assert lines["backend"].endswith("flag")
    assert lines["retry.multiplier"].endswith("default")
