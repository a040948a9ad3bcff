"""Smoke runs of every benchmark with tiny parameters, and the ``mcp-ble bench`` command.

Benchmarks print figures; these tests check that each one runs and reports well-formed results,
never how fast this machine is.
"""

from __future__ import annotations

import json
import re

import pytest

from mcp_ble.core.cli import main
from mcp_ble.core.tooling.bench.command import GROUPS
from mcp_ble.core.tooling.bench.results import Progress, Result
from mcp_ble.core.tooling.bench.suite import count_steps, run_suite
from mcp_ble.core.tooling.bench.world import MTU_CANDIDATES, BenchParams, bench_world

from tests.helpers import load, readme_figures, write_config

REQUIRED = {
    "adv_ingest_per_s",
    "notify_ingest_per_s",
    "bytes_per_tracked_device",
    "mcp_read_overhead_ratio",
    "write_without_response_bytes_per_s",
    "write_with_response_bytes_per_s",
    "discovery_time_s",
    "connection_time_s",
}

TINY = BenchParams(
    runs=2,
    transfer_sizes=(20,),
    transfer_ops=2,
    stream_bytes=2048,
    notify_window_s=0.2,
    device_count=3,
    operation_count=6,
    concurrent_operations=3,
    adv_count=2000,
    adv_devices=100,
    notify_count=2000,
    tracked_devices=500,
    mcp_calls=3,
    soak_ops=300,
)


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("group", GROUPS)
async def test_each_benchmark_runs_with_tiny_parameters(tmp_path, group):
    loaded, catalog = load(write_config(tmp_path, 'plugins = ["metrics", "retry"]\n'))
    sink = Sink()
    progress = Progress(count_steps([group], TINY), sink)
    results = await run_suite(loaded, catalog, TINY, [group], progress)
    assert progress.done == count_steps([group], TINY) == len(sink.lines)
    names = [r.name for r in results]
    assert len(names) == len(set(names)), names
    for r in results:
        assert r.value == r.value, r  # not NaN
        # Only a memory growth may be negative (the allocator gave pages back during the run).
        assert r.value >= 0 or r.name.endswith("_growth_bytes"), r
        as_json = r.as_json()
        assert set(as_json) == {"name", "value", "unit", "ideal", "ratio", "simulated"}
        # No ratio to an ideal of zero (a count of stuck operations, a memory growth).
        assert (as_json["ideal"] in (None, 0)) == (as_json["ratio"] is None), r
    documented = readme_figures(group)
    for name in names:
        assert any(re.fullmatch(p, name) for p in documented), f"{name} missing from the README"
    by_name = {r.name: r for r in results}
    if group == "transfer":
        for name in ("write_without_response_bytes_per_s", "write_with_response_bytes_per_s"):
            assert by_name[name].simulated and by_name[name].ideal
            assert 0.5 < by_name[name].ratio <= 1.01
    if group in ("discovery", "connection"):
        for stat in ("min", "median", "max"):
            assert f"{group}_time_{stat}_s" in by_name
        assert by_name[f"{group}_time_s"].ideal > 0
    if group == "load":
        assert 0 <= by_name["load_success_rate"].value <= 100
        assert "load_latency_p95_s" in by_name
    if group == "micro":
        assert not any(r.simulated for r in results)
        assert by_name["tracked_devices"].value == 500
        assert by_name["notify_buffered"].value == loaded.settings.server.notification_buffer
        assert by_name["mcp_read_overhead_ratio"].value > 0
    if group == "fleet":
        found = by_name["fleet_devices_found"]
        assert 0 < found.value == found.ideal < 200  # every device in range; some are not
        assert by_name["fleet_links_concurrent"].value == by_name["fleet_links_concurrent"].ideal
        assert by_name["fleet_links_concurrent"].ideal == 12
        assert 90 <= by_name["fleet_best_radio_percent"].value <= 100
        assert by_name["fleet_links_moved"].value == by_name["fleet_links_moved"].ideal == 3
        move = by_name["fleet_move_time_s"]
        assert 0.5 < move.ratio < 2 and move.value <= by_name["fleet_move_all_s"].value
    if group == "soak":
        assert by_name["soak_operations"].value == 300
        assert by_name["soak_stuck_operations"].value == 0
        assert by_name["soak_stuck_operations"].target() == "<= 0 met"
        codes = [n for n in names if n.startswith("soak_errors_")]
        assert codes and not [n for n in codes if "internal" in n], codes
        rates = sum(by_name[n].value for n in codes)
        assert rates == pytest.approx(by_name["soak_error_rate"].value)
        assert 0 < by_name["soak_error_rate"].value < 100  # the lab's faults, not all failures
        assert by_name["soak_rss_growth_bytes"].ideal == 0


def test_targets_are_judged():
    assert Result("adv_ingest_per_s", 60_000, "adv/s").target() == ">= 50,000.0 met"
    assert Result("bytes_per_tracked_device", 4096, "B").target() == "<= 2,048.0 MISSED"
    assert Result("discovery_time_s", 1.0, "s", 0.5).ratio == 2.0
    assert Result("load_success_rate", 99, "%").target() == ""


def test_bench_command_writes_the_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--only", "discovery,transfer", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "write_without_response_bytes_per_s" in printed.out and "simulated" in printed.out
    assert "[" in printed.err  # the progress bar
    results = json.loads(out.read_text())["results"]
    names = {r["name"] for r in results}
    assert {"discovery_time_s", "write_with_response_bytes_per_s"} <= names
    for r in results:
        assert set(r) == {"name", "value", "unit", "ideal", "ratio", "simulated"}


def test_bench_compare_prints_ratios(tmp_path, capsys):
    a = write_config(tmp_path, 'plugins = ["metrics", "retry"]\n', "a.toml")
    b = write_config(tmp_path, "plugins = []\n", "b.toml")
    out = tmp_path / "compare.json"
    code = main(
        [
            "bench",
            "--quick",
            "--only",
            "connection",
            "--compare",
            str(a),
            str(b),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "B/A" in printed and str(a) in printed and str(b) in printed
    data = json.loads(out.read_text())
    assert {p["name"] for p in data["ratios"]} >= {"connection_time_s"}
    assert data["a"]["settings"] == str(a)


def test_bench_rejects_unknown_groups(capsys):
    assert main(["bench", "--only", "warp"]) == 2
    assert "unknown benchmark group" in capsys.readouterr().err


def test_the_bench_world_is_a_valid_world():
    import tomllib

    from mcp_ble.backends.simulated.world import World

    world = World.model_validate(tomllib.loads(bench_world(BenchParams(device_count=300))))
    assert len(world.devices) == 302  # the target, the MTU-sweep target, 300 load devices
    assert world.devices[1].mtu == 517
    assert world.devices[0].link.phy == "2M"


async def test_mtu_sweep_finds_the_mtu_whose_pdu_fits_one_packet():
    """MTU optimization over the candidates: with Data Length Extension (251-byte LL
    payloads) MTU 247 fills one packet exactly; 517 fragments into three and is slower."""
    import io

    loaded, catalog = load(cli={"backend": "simulated", "plugins": ""})
    params = BenchParams.quick()
    results = await run_suite(loaded, catalog, params, ["mtu"], Progress(1, io.StringIO()))
    figures = {r.name: r for r in results}
    assert figures["mtu_best"].value == 247
    for mtu in MTU_CANDIDATES:
        figure = figures[f"mtu_{mtu}_write_without_response_bytes_per_s"]
        assert 0.85 < figure.ratio < 1.05, (mtu, figure.ratio)  # simulator against theory
    assert (
        figures["mtu_23_write_without_response_bytes_per_s"].value
        < figures["mtu_185_write_without_response_bytes_per_s"].value
    )


async def test_the_fleet_group_gives_the_same_figures_every_run(tmp_path):
    """Seeded world, virtual clock: a second run, and a run with another seed's world, show
    the figures come from the run, the same for the same seed."""
    loaded, catalog = load(write_config(tmp_path, ""))

    async def figures(seed: int) -> dict[str, float]:
        params = BenchParams(seed=seed)
        results = await run_suite(loaded, catalog, params, ["fleet"], Progress(1, Sink()))
        return {r.name: r.value for r in results}

    first = await figures(2026)
    assert await figures(2026) == first
    other = await figures(7)
    assert other != first and other["fleet_links_concurrent"] == 12
