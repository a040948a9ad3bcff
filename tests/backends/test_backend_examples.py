"""config/examples/: each settings file loads through the real settings loader, as `mcp-ble
--config FILE` would load it, and selects the backend its name says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_ble.core.cli import build_parser, load

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
EXPECTED = {
    "bleak-linux.toml": "bleak",
    "bleak-macos.toml": "bleak",
    "bleak-windows.toml": "bleak",
    "simplepyble.toml": "simplepyble",
    "bumble-usb.toml": "bumble",
    "esphome-proxy.toml": "esphome",
}


def test_every_example_is_listed():
    assert {p.name for p in EXAMPLES.glob("*.toml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_loads_through_the_settings_loader(name, monkeypatch):
    for variable in [v for v in os.environ if v.startswith("MCP_BLE_")]:
        monkeypatch.delenv(variable)
    # the proxy's key comes from the environment variable the file names (a test key here)
    monkeypatch.setenv("ESPHOME_PROXY_KEY", "LaOYPM8T6tYNmAHuGBZtTe/RRrjuFgOQ8HZrRVk1n3w=")
    args = build_parser().parse_args(["config", "show", "--config", str(EXAMPLES / name)])
    loaded, catalog = load(args)
    settings = loaded.settings
    assert settings.backend == EXPECTED[name]
    assert settings.backend in catalog.backends
    assert loaded.origin("backend") == str(EXAMPLES / name)
    own = settings.backend_settings(settings.backend)
    assert own is not None
    if name == "bleak-linux.toml":
        assert own.adapter == "hci0"
    if name in ("bleak-macos.toml", "bleak-windows.toml"):
        assert own.adapter is None  # one adapter on those platforms: none to select
    if name == "bumble-usb.toml":
        assert own.transport == "usb:0"
    if name == "esphome-proxy.toml":
        assert own.port == 6053 and own.key() == os.environ["ESPHOME_PROXY_KEY"]
