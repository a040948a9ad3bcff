"""The README's references must match the code: tools, settings keys, hooks, commands."""

from __future__ import annotations

import re
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
