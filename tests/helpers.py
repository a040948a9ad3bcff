"""Shared builders for tests: settings, apps and MCP servers, isolated per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_ble.core.app import BleApp
from mcp_ble.core.plugin_manager import PluginCatalog
from mcp_ble.core.settings import LoadedSettings, build_settings_class, load_settings
from mcp_ble.core.tool_errors import ERROR_META_KEY

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
    time_scale: float | None = None,
    extra_plugins: dict[str, object] | None = None,
    environ: dict[str, str] | None = None,
    cli: dict[str, Any] | None = None,
) -> BleApp:
    """An app on the simulated backend, from a settings file built here. By default on the
    virtual clock with simulated time following the wall clock between operations: a scan or
    a connection lasts its simulated length however busy the machine (a scaled clock turns a
    stall of the loop into lost simulated seconds), and notifications keep flowing between
    calls. ``time_scale = 0`` alone is the frozen virtual clock; > 0 a scaled one.
    Writes are open unless ``toml`` sets server.write_policy (tests of other things write)."""
    if "write_policy" not in toml:
        if "[server]" in toml:
            toml = toml.replace("[server]", '[server]\nwrite_policy = "open"', 1)
        else:
            toml += '\n[server]\nwrite_policy = "open"\n'
    clock = (
        'time_scale = 0\nvirtual_idle = "wall"'
        if time_scale is None
        else f"time_scale = {time_scale}"
    )
    text = f'backend = "simulated"\n{toml}\n[backends.simulated]\nworld = "{world}"\n{clock}\n'
    loaded, catalog = load(write_config(tmp_path, text), cli, environ, extra_plugins)
    return BleApp.create(loaded, catalog)


async def ok(client: Any, tool: str, **args: Any) -> Any:
    """Call an MCP tool that must succeed; return its structured content."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error_info(result: Any) -> dict[str, Any]:
    """The machine-readable part of a tool error: ``{"code", "kind", "retryable", "hint"?,
    "att_code"?}``, from the result's ``_meta`` (errors carry no structured content: it would
    not match the tool's output schema)."""
    assert result.is_error, result.structured_content
    assert result.structured_content is None, result.structured_content
    info: dict[str, Any] = (result.meta or {})[ERROR_META_KEY]
    assert result.content[0].text.startswith(f"{info['code']}: "), result.content[0].text
    return info


def error_code(result: Any) -> str:
    """The stable code of a tool error (``invalid_input``, ``device_not_found``, ...)."""
    code: str = error_info(result)["code"]
    return code


async def error(client: Any, tool: str, **args: Any) -> str:
    """Call an MCP tool that must fail with a readable message (never a traceback); return the
    text the model reads, which starts with the error's code."""
    result = await client.call_tool(tool, args)
    error_info(result)
    text: str = result.content[0].text
    assert "Traceback" not in text and "Internal error" not in text, text
    assert "Error executing tool" not in text, text
    return text


async def failure(client: Any, tool: str, **args: Any) -> tuple[str, dict[str, Any]]:
    """Call an MCP tool that must fail; return its text and its machine-readable details."""
    result = await client.call_tool(tool, args)
    info = error_info(result)
    text: str = result.content[0].text
    assert "Traceback" not in text and "Error executing tool" not in text, text
    return text, info


def readme_figures(group: str) -> list[str]:
    """Regular expressions for the figure names the README's Benchmarks table gives ``group``:
    ``{a,b}`` is either, ``{n}`` / ``<n>`` any word, a leading ``...`` any prefix."""
    import re

    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    row = re.search(rf"^\| {group} \|.*\|(.*)\|$", readme, re.M)
    assert row, f"bench group {group} has no row in the README"
    patterns = []
    for name in re.findall(r"`([^`]+)`", row.group(1)):
        pattern = re.escape(name)
        pattern = re.sub(
            r"\\\{(\w+(?:,\w+)+)\\\}", lambda m: f"({m.group(1).replace(',', '|')})", pattern
        )
        pattern = re.sub(r"\\\{\w+\\\}|<[\w\\ ]+>", r"\\w+", pattern)
        pattern = pattern.replace(r"\.\.\.", ".*")
        patterns.append(pattern)
    return patterns
