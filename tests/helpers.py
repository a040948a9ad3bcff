"""Shared builders for tests: settings, apps and MCP servers, isolated per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_ble.core.app import BleApp
from mcp_ble.core.plugin_manager import PluginCatalog
from mcp_ble.core.settings import LoadedSettings, build_settings_class, load_settings

TESTS = Path(__file__).parent


def write_config(tmp_path: Path, text: str, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(
    config: Path | None = None,
    cli: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    extra_plugins: dict[str, object] | None = None,
) -> tuple[LoadedSettings, PluginCatalog]:
    catalog = PluginCatalog.discover(extra_plugins)
    cls = build_settings_class(
        {name: reg.settings for name, reg in catalog.backends.items()}, catalog.sections
    )
    return load_settings(cls, config, cli, environ if environ is not None else {}), catalog


def make_app(
    tmp_path: Path,
    toml: str = "",
    world: str | Path = "demo",
    time_scale: float = 0.01,
    extra_plugins: dict[str, object] | None = None,
    environ: dict[str, str] | None = None,
    cli: dict[str, Any] | None = None,
) -> BleApp:
    """An app on the simulated backend (fast time scale), from a settings file built here."""
    text = (
        f'backend = "simulated"\n{toml}\n'
        f'[backends.simulated]\nworld = "{world}"\ntime_scale = {time_scale}\n'
    )
    loaded, catalog = load(write_config(tmp_path, text), cli, environ, extra_plugins)
    return BleApp.create(loaded, catalog)


async def ok(client: Any, tool: str, **args: Any) -> Any:
    """Call an MCP tool that must succeed; return its structured content."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def error(client: Any, tool: str, **args: Any) -> str:
    """Call an MCP tool that must fail with a readable message (never a traceback)."""
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    assert "Traceback" not in text and "Internal error" not in text, text
    return text
