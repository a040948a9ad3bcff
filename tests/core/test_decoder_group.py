"""``plugins = [..., "decoders"]``: every built-in decoder plugin whose library is installed, in
the order of ``DECODERS``; a decoder named on its own must load (one missing fails the start
with its one-line error), and the group never fails for one missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp.client import Client

from mcp_ble.core.errors import ConfigError
from mcp_ble.core.plugin_manager import PluginCatalog
from mcp_ble.core.server import build_server
from mcp_ble.plugins.decoders import DECODERS

from tests.helpers import make_app, ok


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def catalog_without_thermopro(monkeypatch: pytest.MonkeyPatch) -> PluginCatalog:
    """The real catalog as discovered with thermopro-ble not installed (blocked on import)."""
    monkeypatch.setitem(sys.modules, "thermopro_ble", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "mcp_ble.plugins.decoders.thermopro", raising=False)
    return PluginCatalog.discover()


def test_the_group_is_every_installed_decoder_in_order(
    catalog_without_thermopro: PluginCatalog,
) -> None:
    catalog = catalog_without_thermopro
    assert "mcp-ble[thermopro]" in catalog.broken["thermopro"]
    # the decoders the test environment installs (pyproject's test extra has them all)
    assert set(DECODERS) - {"thermopro"} <= set(catalog.plugins)
    names = [n for n, _ in catalog.resolve("simulated", ["metrics", "decoders", "govee"])]
    installed = [d for d in DECODERS if d not in {"thermopro", "govee"}]
    assert names[names.index("metrics") :] == ["metrics", *installed, "govee"]
    assert catalog.expand(["retry"]) == ["retry"]  # no group: the list as given


def test_a_decoder_named_alone_must_load(catalog_without_thermopro: PluginCatalog) -> None:
    with pytest.raises(ConfigError) as error:
        catalog_without_thermopro.resolve("simulated", ["decoders", "thermopro"])
    assert "pip install 'mcp-ble[thermopro]'" in str(error.value)


async def test_settings_naming_the_group_read_the_demo_worlds_sensors(tmp_path: Path) -> None:
    app = make_app(tmp_path, 'plugins = ["sig", "decoders"]\n', time_scale=0)
    async with Client(build_server(app)) as client:
        found = await ok(client, "ble_sensors", measurement="temperature", name="living room")
    [thermometer] = found["sensors"]
    assert thermometer["name"] == "Living Room Thermo"
    assert thermometer["readings"]["temperature"].endswith(" °C")
