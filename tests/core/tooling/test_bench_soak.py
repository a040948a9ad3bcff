"""The soak benchmark: its report, its stuck-operation detector, and the command."""

from __future__ import annotations

import asyncio
import json

from mcp_ble.core.cli import main
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.tooling.bench import soak as bench_soak

from tests.helpers import make_app


async def test_an_operation_past_its_deadline_counts_as_stuck(tmp_path, monkeypatch):
    """The detector can fail: reads that never end are cancelled at their deadline and counted,
    and the soak still finishes."""
    real = bench_soak._operation

    async def hanging(app, kind, target):
        if kind == "read":
            await asyncio.Event().wait()  # never set
        await real(app, kind, target)

    monkeypatch.setattr(bench_soak, "_operation", hanging)
    app = make_app(tmp_path, "[server]\noperation_timeout_s = 0.05\n", world="lab", time_scale=0)
    async with app:
        await app.scan(3.0, ScanFilter())
        report = await bench_soak.soak(app, 80, seed=3, workers=4)
    reads = bench_soak.plan_operations(80, 3).count("read")
    assert reads > 0
    assert report.stuck == reads and dict(report.stuck_kinds) == {"read": reads}
    assert report.operations == 80
    assert report.ok + report.error_count == 80 - reads


async def test_a_small_soak_gets_nothing_stuck_and_counts_every_operation(tmp_path):
    app = make_app(tmp_path, world="lab", time_scale=0)
    async with app:
        await app.scan(3.0, ScanFilter())
        report = await bench_soak.soak(app, 300, seed=11, rss=lambda: 1000)
    assert report.stuck == 0
    assert report.operations == 300 == report.ok + report.error_count + report.stuck
    assert not [code for code in report.errors if code.startswith("internal")], report.errors
    assert report.rss_growth == 0 and report.simulated_s > 0


def test_soak_runs_only_when_named_and_writes_its_figures(tmp_path, capsys):
    out = tmp_path / "soak.json"
    assert main(["bench", "--quick", "--only", "soak", "--json", str(out)]) == 0
    figures = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert figures["soak_operations"]["value"] == 2000
    assert figures["soak_stuck_operations"] == {
        "name": "soak_stuck_operations",
        "value": 0,
        "unit": "ops",
        "ideal": 0,
        "ratio": None,
        "simulated": False,
    }
    assert "soak_stuck_operations" in capsys.readouterr().out
