"""Bench figures: one :class:`Result` each, summary statistics, the progress bar and the
tables ``mcp-ble bench`` prints."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

#: (comparison, bound): the project's targets for the server's own cost.
TARGETS: dict[str, tuple[str, float]] = {
    "adv_ingest_per_s": (">=", 50_000),
    "adv_ingest_decoded_per_s": (">=", 50_000),
    "notify_ingest_per_s": (">=", 20_000),
    "bytes_per_tracked_device": ("<=", 2048),
    "mcp_read_overhead_ratio": ("<=", 1.5),
    "soak_stuck_operations": ("<=", 0),
    "soak_rss_growth_bytes": ("<=", 10 * 2**20),
    "soak_wall_s": ("<=", 120),
}


@dataclass
class Result:
    """One figure. ``ideal`` is the theory's value where one applies; ``simulated`` says the
    figure is in simulated time (the radio), not real time (the server's own cost)."""

    name: str
    value: float
    unit: str
    ideal: float | None = None
    simulated: bool = True

    @property
    def ratio(self) -> float | None:
        if self.ideal is None or self.ideal == 0:
            return None
        return self.value / self.ideal

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "ideal": None if self.ideal is None else _round(self.ideal),
            "ratio": None if ratio is None else round(ratio, 4),
            "simulated": self.simulated,
        }

    def target(self) -> str:
        rule = TARGETS.get(self.name)
        if rule is None:
            return ""
        op, bound = rule
        met = self.value >= bound if op == ">=" else self.value <= bound
        shown = f"{bound:,.0f}" if self.unit == "chars" else _fmt(bound)  # counts: no decimals
        return f"{op} {shown} {'met' if met else 'MISSED'}"


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 0.01:
        return f"{value:.4g}"
    return f"{value:.3g}"


def stats(name: str, samples: list[float], unit: str, ideal: float | None) -> list[Result]:
    """Min, median, mean and max of the samples; the mean carries the ideal."""
    return [
        Result(f"{name}_min_s", min(samples), unit),
        Result(f"{name}_median_s", statistics.median(samples), unit),
        Result(f"{name}_s", statistics.fmean(samples), unit, ideal),
        Result(f"{name}_max_s", max(samples), unit),
    ]


def rate_and_latency(
    name: str, size: int, latencies: list[float], ideal_rate: float, ideal_time: float
) -> list[Result]:
    """``<name>_bytes_per_s`` (from the mean) and ``<name>_latency_median_s``, with ideals."""
    return [
        Result(f"{name}_bytes_per_s", size / statistics.fmean(latencies), "B/s", ideal_rate),
        Result(f"{name}_latency_median_s", statistics.median(latencies), "s", ideal_time),
    ]


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()

    def step(self, label: str) -> None:
        width = 30
        filled = round(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.perf_counter() - self.started
        line = f"[{bar}] {self.done}/{self.total} {elapsed:5.1f}s {label}"
        if self.tty:
            self.stream.write("\r" + line[:110].ljust(110))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.done += 1

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


def table(results: list[Result]) -> str:
    rows: list[tuple[str, ...]] = [("FIGURE", "VALUE", "UNIT", "IDEAL", "RATIO", "CLOCK", "TARGET")]
    for r in results:
        ratio = r.ratio
        rows.append(
            (
                r.name,
                f"{r.value:,.0f}" if r.unit == "chars" else _fmt(r.value),
                r.unit,
                _fmt(r.ideal),
                "-" if ratio is None else f"{ratio:.3f}",
                "simulated" if r.simulated else ("-" if r.unit == "chars" else "real"),
                r.target(),
            )
        )
    return _render(rows)


def compare_table(a: list[Result], b: list[Result]) -> tuple[str, list[dict[str, Any]]]:
    """Figures of both runs side by side (a figure only one run has shows '-' for the other)."""
    in_a = {r.name: r for r in a}
    in_b = {r.name: r for r in b}
    names = list(in_a) + [name for name in in_b if name not in in_a]
    rows: list[tuple[str, ...]] = [("FIGURE", "A", "B", "B/A", "UNIT", "CLOCK")]
    pairs = []
    for name in names:
        ra, rb = in_a.get(name), in_b.get(name)
        some = ra or rb
        assert some is not None
        ratio = rb.value / ra.value if ra is not None and rb is not None and ra.value else None
        rows.append(
            (
                name,
                _fmt(ra.value) if ra else "-",
                _fmt(rb.value) if rb else "-",
                "-" if ratio is None else f"{ratio:.3f}",
                some.unit,
                "simulated" if some.simulated else "real",
            )
        )
        pairs.append(
            {
                "name": name,
                "unit": some.unit,
                "a": _round(ra.value) if ra else None,
                "b": _round(rb.value) if rb else None,
                "ratio": None if ratio is None else round(ratio, 4),
                "simulated": some.simulated,
            }
        )
    return _render(rows), pairs


def _render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 3, 4} if rows[0][1] == "VALUE" else {1, 2, 3}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
