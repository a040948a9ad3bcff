"""The README's references must match the code: tools, settings keys, hooks, commands."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from mcp_ble.core import hookspecs
from mcp_ble.core.cli import build_parser

from tests.helpers import load

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


async def test_every_tool_is_documented(tmp_path):
    from mcp.client import Client

    from mcp_ble.core.server import build_server

    from tests.helpers import make_app

    async with Client(build_server(make_app(tmp_path))) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        row = re.search(rf"^\| `{tool.name}` \|(.*)$", README, re.M)
        assert row, f"{tool.name} missing from the README tool table"
        arguments = re.split(r"(?<!\\)\|", row.group(1))[0]
        documented = {
            re.findall(r"`(\w+)`", piece)[0] for piece in arguments.split(", ") if "`" in piece
        }
        assert documented == set(tool.input_schema.get("properties", {})) - {"ctx"}, tool.name
        for name, schema in tool.input_schema.get("properties", {}).items():
            if schema.get("default") is not None:  # shown as `name` = `default`
                shown = f"`{name}` = `{json.dumps(schema['default'])}`"
                assert shown in row.group(1), f"{tool.name}: README lacks {shown}"


def test_every_setting_is_documented():
    loaded, _ = load()
    for key, _value, _source in loaded.rows():
        assert f"| `{key}` |" in README, f"setting {key} missing from the README"
    documented = set(re.findall(r"^\| `([a-z_.]+)` \| [^|]*\| [^|]*\|$", README, re.M))
    keys = {key for key, _, _ in loaded.rows()}
    tools_and_hooks = {k for k in documented if k.startswith(("ble_", "mcp_ble"))}
    assert documented - keys - tools_and_hooks == set(), (
        "README documents settings that don't exist"
    )


def test_every_hook_is_documented():
    hooks = {name for name in dir(hookspecs) if name.startswith("mcp_ble_")}
    for hook in hooks:
        assert f"`{hook}(" in README, f"hook {hook} missing from the README"
    assert set(re.findall(r"`(mcp_ble_\w+)\(", README)) <= hooks


def test_every_command_is_documented():
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    for command in sub.choices:
        assert f"`mcp-ble {command}" in README, command


def test_every_error_code_is_documented():
    from mcp_ble.core import errors

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = {errors.BleError.code} | {c.code for c in subclasses(errors.BleError)}
    codes |= {"config_error", "internal_error"}
    section = README[README.index("an agent can still branch on the code") :]
    section = section[: section.index("`kind` says")]
    assert set(re.findall(r"`([a-z_]+)`", section)) == codes


def test_the_token_length_rule_is_documented():
    from mcp_ble.core.http import MIN_TOKEN_LENGTH

    http = README[README.index("### HTTP") :]
    assert f"at least {MIN_TOKEN_LENGTH} characters" in http[: http.index("\n## ")]
    row = re.search(r"^\| `server.http_token` \|(.*)$", README, re.M)
    assert row and f"at least {MIN_TOKEN_LENGTH} characters" in row.group(1)


def test_answers_to_text_that_is_not_unicode_are_documented():
    for part in ("lone surrogate", "-32602 carrying its id", 'encoding="hex"', "-32700"):
        assert part in README, part


def section(title: str) -> str:
    """The README's text from the heading ``title`` to the next heading of the same level."""
    level = title.split(" ")[0]
    start = README.index(f"\n{title}\n")
    end = README.find(f"\n{level} ", start + len(title) + 2)
    return README[start : end if end > 0 else None]


def test_every_setting_default_is_the_shipped_one():
    """The default column says what runs without --config: the model's defaults overlaid with
    config/default.toml."""
    loaded, _ = load()
    for key, value, _source in loaded.rows():
        row = re.search(rf"^\| `{re.escape(key)}` \| ([^|]*) \|", README, re.M)
        assert row, key
        shown = "unset" if value is None else f"`{json.dumps(value)}`"
        assert row.group(1) == shown, f"{key}: README says {row.group(1)}, the code {shown}"


def test_every_command_option_is_documented():
    parser = build_parser()
    text = section("## Command line")
    common = {"-h", "--help", "--config", "--backend", "--plugins", "-v", "--verbose"}
    for flag in ("--config FILE", "--backend NAME", "--plugins a,b", "-v"):
        assert f"`{flag}`" in text, flag

    def options(p: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, str]]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from options(child, f"{prefix} {name}")
            else:
                for flag in action.option_strings:
                    if flag.startswith("--") and flag not in common | {"--version"}:
                        yield prefix, flag

    for command, flag in options(parser, "mcp-ble"):
        row = re.search(rf"^\| `{command}[ `].*$", text, re.M)
        assert row, f"{command} has no row in the Command line table"
        assert f"[{flag}" in row.group(0), f"{command} {flag} missing from its README row"


def test_every_plugin_and_backend_is_documented():
    entry_points = metadata.entry_points(group="mcp_ble")
    ours = [ep for ep in entry_points if ep.value.startswith("mcp_ble.")]
    plugins = section("### Built-in optimization plugins")
    backends = section("## Backends")
    for ep in ours:
        if ep.name.startswith("backend-"):
            name = ep.name.removeprefix("backend-")
            assert re.search(rf"^\| `{name}`", backends, re.M), f"backend {name} missing"
        else:
            assert f"\n| `{ep.name}` |" in plugins, f"plugin {ep.name} missing"
    rows = set(re.findall(r"^\| `(\w+)` \|", plugins, re.M))
    assert rows == {ep.name for ep in ours if not ep.name.startswith("backend-")}


def test_the_hooks_that_may_be_async_are_listed():
    listed = re.search(r"`mcp_ble\.core\.hookspecs\.MAY_BE_ASYNC` \(([^)]*)\)", README)
    assert listed
    names = {f"mcp_ble_{name}" for name in re.findall(r"`(\w+)`", listed.group(1))}
    assert names == set(hookspecs.MAY_BE_ASYNC)
    for hook in hookspecs.MAY_BE_ASYNC:  # the hook table's signatures are the hookspecs'
        row = re.search(rf"`{hook}\(([^)]*)\)`", README)
        assert row, hook
        params = [p for p in inspect.signature(getattr(hookspecs, hook)).parameters]
        assert [p.strip() for p in row.group(1).split(",") if p.strip()] == params, hook


def test_every_hook_signature_is_the_hookspec():
    for hook in (name for name in dir(hookspecs) if name.startswith("mcp_ble_")):
        row = re.search(rf"`{hook}\(([^)]*)\)`", README)
        assert row, hook
        params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        assert [p.strip() for p in row.group(1).split(",") if p.strip()] == params, hook


def test_the_plugin_api_table_names_every_member():
    from mcp_ble.core.plugin_api import LinkView, PluginApp, SubscriptionView

    for member in (n for n in dir(PluginApp) if not n.startswith("_")):
        assert f"`app.{member}" in README or f"`await app.{member}" in README, member
    for view, method in ((LinkView, "links"), (SubscriptionView, "subscriptions")):
        row = re.search(rf"^\| `app\.{method}\(.*$", README, re.M)
        assert row, method
        for field in dataclasses.fields(view):
            assert f"`{field.name}`" in row.group(0), f"{view.__name__}.{field.name}"


async def test_every_metric_is_documented(tmp_path):
    from mcp.client import Client

    from mcp_ble.core.server import build_server

    from tests.helpers import make_app

    async with Client(build_server(make_app(tmp_path))) as client:
        text = (await client.read_resource("ble://metrics")).contents[0].text
    row = re.search(r"^\| `metrics` \|.*$", README, re.M)
    assert row
    documented = set(re.findall(r"`(ble_\w+)", row.group(0)))
    for name, kind in re.findall(r"^# TYPE (ble_\w+) (\w+)$", text, re.M):
        if name.endswith("_created"):  # prometheus_client's creation time of a counter/histogram
            continue
        name = f"{name}_total" if kind == "counter" and not name.endswith("_total") else name
        assert name in documented, f"metric {name} missing from the metrics plugin's row"


def test_every_bench_group_has_a_row():
    from mcp_ble.core.tooling.bench.command import GROUPS, OPT_IN

    text = section("## Benchmarks")
    rows = set(re.findall(r"^\| (\w+) \| ", text, re.M)) - {"group", "item"}
    assert rows == set(GROUPS)
    listed = re.search(r"# groups: ([\w, ]+)", text)
    assert listed and listed.group(1).split(", ") == [g for g in GROUPS if g not in OPT_IN]
    for group in OPT_IN:
        assert f"--only {group} " in text, group


def test_every_path_and_module_named_exists():
    root = Path(__file__).resolve().parent.parent
    for path in set(
        re.findall(r"`((?:core|plugins|backends|config|tests|\.ci)/[\w./-]*)`", README)
    ):
        assert (root / path).exists(), f"the README names {path}, which does not exist"
    for dotted in set(re.findall(r"\b(mcp_ble(?:\.\w+)+)", README)):
        module, _, name = dotted.rpartition(".")
        try:
            importlib.import_module(dotted)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), name), dotted


def test_every_alert_is_documented():
    rules = (Path(__file__).resolve().parent.parent / "config/prometheus/alerts.yml").read_text()
    alerts = set(re.findall(r"- alert: (\w+)", rules))
    documented = set(re.findall(r"^\| `(Ble\w+)` \|", section("## Operating mcp-ble"), re.M))
    assert documented == alerts


def test_every_world_key_is_documented():
    from mcp_ble.backends.simulated import world

    models = {
        "### Top level": world.World,
        "### `[link]`": world.Link,
        "### `[[devices]]`": world.Device,
        "### `[[devices.adverts]]`": world.Advert,
        "### `[[devices.services.characteristics]]`": world.Characteristic,
        "### `[devices.faults]`": world.Faults,
        "### `[[crowds]]`": world.Crowd,
        "### `[[radios]]`": world.Radio,
    }
    for heading, model in models.items():
        start = README.index(f"\n{heading}")
        text = README[start : README.index("\n#", start + 1)]
        keys = set()
        for cell in re.findall(r"^\| (`[^|]*)\|", text, re.M):
            keys |= {k.strip("[]").rsplit(".", 1)[-1] for k in re.findall(r"`([^`]+)`", cell)}
        fields = {field.alias or name for name, field in model.model_fields.items()}
        assert keys == fields, f"{heading}: README only {keys - fields}, code only {fields - keys}"


def test_the_token_table_gives_every_ceiling():
    """The README's table of what an agent reads: one row per ``tokens`` figure, in the order of
    ``CEILINGS``, each with that ceiling and a figure within it."""
    from mcp_ble.core.tooling.bench.tokens import CEILINGS

    start = README.index("What an agent reads (`mcp-ble bench --only tokens`")
    table = README[start : README.index("\n\n", README.index("| item |", start))]
    rows = re.findall(r"^\| [^|]+ \| ([\d,]+) \| ([\d,]+)", table, re.M)
    assert [int(ceiling.replace(",", "")) for _, ceiling in rows] == list(CEILINGS.values())
    for figure, ceiling in rows:
        assert int(figure.replace(",", "")) <= int(ceiling.replace(",", "")), (figure, ceiling)
