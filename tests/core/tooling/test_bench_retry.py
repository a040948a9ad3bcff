"""The retry and mtu bench figures that justify two defaults (README, Plugins): the retry
plugin's 0.25 s first delay, and the mtu plugin being on."""

from __future__ import annotations

import io

from mcp_ble.core.tooling.bench.results import Progress
from mcp_ble.core.tooling.bench.suite import run_suite
from mcp_ble.core.tooling.bench.world import BenchParams

from tests.helpers import load, write_config


async def figures(tmp_path, toml: str, group: str) -> dict[str, float]:
    loaded, catalog = load(write_config(tmp_path, toml, f"{abs(hash(toml))}.toml"))
    results = await run_suite(loaded, catalog, BenchParams(), [group], Progress(1, io.StringIO()))
    return {r.name: r.value for r in results}


async def test_a_quarter_second_first_retry_halves_flaky_connects(tmp_path):
    slow = await figures(tmp_path, "[retry]\ninitial_delay_s = 1.0\n", "retry")
    fast = await figures(tmp_path, "[retry]\ninitial_delay_s = 0.25\n", "retry")
    assert fast["retry_connect_failed_percent"] == slow["retry_connect_failed_percent"] < 5
    assert fast["retry_connect_time_mean_s"] < 0.6 * slow["retry_connect_time_mean_s"]
    assert fast["retry_connect_time_p95_s"] < 0.6 * slow["retry_connect_time_p95_s"]


async def test_the_mtu_plugin_takes_247_where_the_adapter_offers_517(tmp_path):
    off = await figures(tmp_path, 'plugins = ["metrics"]\n', "mtu")
    on = await figures(tmp_path, 'plugins = ["metrics", "mtu"]\n', "mtu")
    assert (off["mtu_517_link_mtu"], on["mtu_517_link_mtu"]) == (517, 247)
    rate = "mtu_517_write_without_response_bytes_per_s"
    assert on[rate] > 1.3 * off[rate]
