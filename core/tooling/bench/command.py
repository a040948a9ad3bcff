"""``mcp-ble bench``: its arguments and the command. Light to import: ``mcp-ble --help`` reads
the arguments without loading the suite."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import ConfigError

GROUPS = (
    "discovery",
    "connection",
    "transfer",
    "mtu",
    "load",
    "micro",
    "sensors",
    "tokens",
    "soak",
    "retry",
    "fleet",
)
#: Groups that run only when named with --only (the soak takes a minute or two).
OPT_IN = ("soak", "retry")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="small parameters: the whole suite in seconds"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.toml", "B.toml"),
        help="run the suite under two settings files and print B/A for every figure",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated groups to run (default all but {', '.join(OPT_IN)}): "
        f"{', '.join(GROUPS)}",
    )
    parser.add_argument("--seed", type=int, default=2026, help="seed of the benchmark world")
    parser.add_argument(
        "--runs",
        type=int,
        default=10,
        metavar="N",
        help="discovery and connection runs (default 10; more: a tighter mean)",
    )


def run_bench(args: argparse.Namespace, load: Callable[[argparse.Namespace], Any]) -> int:
    """The ``mcp-ble bench`` command. ``load(args)`` gives (LoadedSettings, PluginCatalog)."""
    from .results import Progress, compare_table, table
    from .suite import count_steps, run_suite
    from .world import BenchParams

    groups = [g for g in GROUPS if g not in OPT_IN]
    if args.only:
        groups = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ConfigError(
                f"--only: unknown benchmark group(s) {', '.join(unknown)}; "
                f"choose from {', '.join(GROUPS)}"
            )
    params = BenchParams.quick(args.seed) if args.quick else BenchParams(seed=args.seed)
    if args.runs < 1:
        raise ConfigError(f"--runs {args.runs}: give at least 1 run")
    params.runs = args.runs
    configs = list(args.compare) if args.compare else [args.config]
    loads = []
    for config in configs:
        args.config = config
        loads.append(load(args))

    progress = Progress(count_steps(groups, params) * len(loads))
    runs = [asyncio.run(run_suite(lo, cat, params, groups, progress)) for lo, cat in loads]
    progress.finish()
    mode = "quick" if args.quick else "full"
    if len(runs) == 1:
        results = runs[0]
        source = loads[0][0].config_path
        print(f"mcp-ble bench ({mode}), settings {source}, seed {params.seed}")
        print("simulated = simulated time on the virtual clock; real = this machine's time")
        print(table(results))
        if args.json:
            payload = {"results": [r.as_json() for r in results]}
            args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        missed = [r.name for r in results if r.target().endswith("MISSED")]
        if missed:
            print(f"targets missed: {', '.join(missed)}")
        return 0
    a, b = runs
    text, pairs = compare_table(a, b)
    print(f"mcp-ble bench --compare ({mode}), seed {params.seed}")
    print(f"A = {loads[0][0].config_path}\nB = {loads[1][0].config_path}")
    print(text)
    if args.json:
        pair_payload: dict[str, Any] = {
            "a": {"settings": str(configs[0]), "results": [r.as_json() for r in a]},
            "b": {"settings": str(configs[1]), "results": [r.as_json() for r in b]},
            "ratios": pairs,
        }
        args.json.write_text(json.dumps(pair_payload, indent=2) + "\n", encoding="utf-8")
    return 0
