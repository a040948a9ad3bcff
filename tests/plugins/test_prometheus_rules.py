"""The shipped alert rules, scrape example and dashboard, checked by Prometheus's own promtool:
each alert has a unit test that trips it (tests/prometheus/alerts_test.yml)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.external import require_command

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "config" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = Path(__file__).resolve().parents[1] / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "mcp-ble.json"

#: What README "Operating mcp-ble" promises: one alert for each of these.
ALERTS = {
    "BleDiscoverySlow",
    "BleConnectionFailureRatio",
    "BleOperationLatencyHigh",
    "BleEventLoopStall",
    "BleMemoryGrowth",
    "BleNotificationsDropped",
    "BleRadioLost",
}


def promtool(*args: str) -> str:
    proc = subprocess.run(
        [require_command("promtool"), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_rules_and_scrape_config_are_valid():
    assert "SUCCESS: 7 rules found" in promtool("check", "rules", str(RULES))
    promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_every_alert_has_a_unit_test_that_fires_it():
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M))
    assert alerts == ALERTS
    tests = RULE_TESTS.read_text()
    for alert in alerts:
        # a test case that expects this alert to fire (non-empty exp_alerts)
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", tests), alert
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def test_the_rule_tests_can_fail(tmp_path):
    # The same tests against rules with every threshold out of reach must fail.
    (tmp_path / "config" / "prometheus").mkdir(parents=True)
    loose = re.sub(r"> (0\.2|0\.5|1|5|50e6|0)$", "> 1e12", RULES.read_text(), flags=re.M)
    loose = loose.replace("== 1", "== 2")
    assert loose.count("1e12") == 6
    (tmp_path / "config" / "prometheus" / "alerts.yml").write_text(loose)
    (tmp_path / "tests").mkdir()
    copy = tmp_path / "tests" / "alerts_test.yml"
    copy.write_text(RULE_TESTS.read_text().replace("../../config", "../config"))
    proc = subprocess.run(
        [require_command("promtool"), "test", "rules", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    for alert in ALERTS:
        assert f"alertname: {alert}," in proc.stdout + proc.stderr, alert


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_dashboard_names_only_metrics_the_server_exposes():
    from mcp_ble.plugins import metrics

    source = Path(metrics.__file__).read_text()
    exprs = dashboard_expressions()
    assert len(exprs) >= 15
    for expr in exprs:
        for name in re.findall(r"\b(ble_[a-z_]+?)(?:_bucket|_sum|_count|_total)?\b[{\[]", expr):
            assert f'"{name}' in source, (name, expr)
