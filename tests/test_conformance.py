"""The official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios)
against `mcp-ble serve --transport http` on the simulated backend.

Every scenario the suite runs is either applicable (it must pass: no failed or warning check) or
listed in the README as not applicable, with the reason: those scenarios call the suite's own
fixture tools, resources and prompts (``test_simple_text``, ``test://static-text``, ...) or an
optional capability this server does not declare, and they must fail only that way (the server
answers with the JSON-RPC error for the missing fixture or method). A new suite version that adds
a scenario fails here until the scenario is classified."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.external import CLIENTS, http_server, node_env, require_npm_bin

README = Path(__file__).parents[1] / "README.md"

APPLICABLE = frozenset(
    {
        "server-initialize",
        "ping",
        "tools-list",
        "resources-list",
        "prompts-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    }
)

NOT_APPLICABLE = frozenset(
    {
        # An optional capability the server does not declare.
        "logging-set-level",
        # The suite's fixture prompt (test_prompt_with_arguments); no completions capability.
        "completion-complete",
        # The suite's fixture tools.
        "tools-call-simple-text",
        "tools-call-image",
        "tools-call-audio",
        "tools-call-embedded-resource",
        "tools-call-mixed-content",
        "tools-call-with-logging",
        "tools-call-error",
        "tools-call-with-progress",
        "tools-call-sampling",
        "tools-call-elicitation",
        "elicitation-sep1034-defaults",
        "elicitation-sep1330-enums",
        # The suite's fixture resources (test://...).
        "resources-read-text",
        "resources-read-binary",
        "resources-templates-read",
        "resources-subscribe",
        "resources-unsubscribe",
        # The suite's fixture prompts.
        "prompts-get-simple",
        "prompts-get-with-args",
        "prompts-get-embedded-resource",
        "prompts-get-with-image",
    }
)

PASSING = ("SUCCESS", "INFO")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Run the suite's active server scenarios once; scenario name -> its checks."""
    env = node_env(tmp_path_factory.mktemp("home"))
    suite = require_npm_bin("conformance")
    out = tmp_path_factory.mktemp("conformance")
    with http_server(env) as url:
        proc = subprocess.run(
            [str(suite), "server", "--url", url, "--output-dir", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=CLIENTS,
        )
    found: dict[str, list[dict[str, Any]]] = {}
    for checks in out.glob("*/checks.json"):
        # server-<scenario>-<ISO timestamp>
        name = re.sub(r"-\d{4}-\d\d-\d\dT[\d-]+Z$", "", checks.parent.name)
        found[name.removeprefix("server-")] = json.loads(checks.read_text())
    assert found, f"the suite wrote no results: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return found


def test_every_scenario_is_classified(results):
    unknown = sorted(set(results) - APPLICABLE - NOT_APPLICABLE)
    assert not unknown, f"new conformance scenarios: {unknown}; classify them here and in README"
    assert APPLICABLE <= set(results), sorted(APPLICABLE - set(results))


@pytest.mark.parametrize("scenario", sorted(APPLICABLE))
def test_applicable_scenario_passes(results, scenario):
    checks = results[scenario]
    bad = [c for c in checks if c.get("status") not in PASSING]
    assert checks and not bad, json.dumps(bad, indent=1)[:3000]
    assert any(c.get("status") == "SUCCESS" for c in checks)


# How a scenario that does not apply ends: the server answers the suite's request for a fixture
# it does not have with invalid params (-32602) naming it, or a method of a capability it does not
# declare with method not found (-32601). Anything else (a crash, a timeout, -32603) is a failure.
FIXTURE_MISSING = re.compile(
    r"MCP error -32602: .*'?test(_|://)|MCP error -32601: Method not found"
)


@pytest.mark.parametrize("scenario", sorted(NOT_APPLICABLE))
def test_scenario_that_does_not_apply_fails_only_for_its_fixture(results, scenario):
    if scenario not in results:
        pytest.fail(f"the suite no longer runs {scenario}: drop it from NOT_APPLICABLE and README")
    failed = [c for c in results[scenario] if c.get("status") not in PASSING]
    assert failed, f"{scenario} passes now: move it to APPLICABLE"
    for check in failed:
        assert FIXTURE_MISSING.search(check.get("errorMessage") or ""), json.dumps(check)[:2000]


def test_readme_lists_the_scenarios_that_do_not_apply():
    text = README.read_text()
    unlisted = sorted(s for s in NOT_APPLICABLE if f"`{s}`" not in text)
    assert not unlisted, f"README does not list these not-applicable scenarios: {unlisted}"
