"""Every bad setting or flag ends every command with one line on stderr and exit code 2: no
traceback, no other exit code, no command that goes on as if nothing were wrong."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_ble.core.cli import main
from mcp_ble.core.errors import ConfigError

from tests.helpers import make_app, write_config

SIM = 'backend = "simulated"\n'
#: Every command that reads the settings, with the arguments it needs to stop quickly.
COMMANDS = [
    ["serve"],
    ["config", "show"],
    ["plugins"],
    ["doctor"],
    ["bench", "--quick", "--only", "micro"],
    ["demo"],
    ["scan", "--duration", "0.1"],
]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def run_main(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """main(argv) must return 2 (or exit 2, for argparse) with one line on stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code  # type: ignore[assignment]
    captured = capsys.readouterr()
    assert code == 2, captured.err
    return one_line(captured.err)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another socket really listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """(settings file, what the one line must say) for each bad file."""
    read_only = tmp_path / "plain-file"
    read_only.write_text("", encoding="utf-8")
    non_utf8 = tmp_path / "latin1.toml"
    non_utf8.write_bytes(SIM.encode() + b"# caf\xe9\n[server]\nscan_duration_s = 2\n")
    return {
        "non-utf8": (non_utf8, "not UTF-8 text (byte 0xe9 on line 2)"),
        "deep-arrays": (
            write_config(tmp_path, SIM + "plugins = " + "[" * 5000 + "]" * 5000, "a.toml"),
            "nested deeper than 32 levels",
        ),
        "deep-tables": (
            write_config(
                tmp_path, SIM + "[metrics]\nx = " + "{a=" * 5000 + "1" + "}" * 5000, "t.toml"
            ),
            "nested deeper than 32 levels",
        ),
        "world-is-a-directory": (
            write_config(tmp_path, SIM + f'[backends.simulated]\nworld = "{tmp_path}"\n', "w.toml"),
            "is a directory",
        ),
        "unknown-world": (
            write_config(tmp_path, SIM + '[backends.simulated]\nworld = "atlantis"\n', "u.toml"),
            "'atlantis' is not a bundled world",
        ),
        "unwritable-profiler-path": (
            write_config(
                tmp_path,
                SIM + f'plugins = ["profiler"]\n[profiler]\npath = "{read_only}/p.jsonl"\n',
                "p.toml",
            ),
            "profiler.path",
        ),
    }


CASES = ["non-utf8", "deep-arrays", "deep-tables", "world-is-a-directory", "unknown-world"]


@pytest.mark.parametrize("case", [*CASES, "unwritable-profiler-path"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bad_settings_file_is_one_line_and_exit_2(tmp_path, capsys, case, command):
    path, says = bad_files(tmp_path)[case]
    line = run_main(capsys, [*command, "--config", str(path)])
    assert line.startswith("mcp-ble: configuration error: ") and says in line, line
    if case != "unknown-world":
        assert str(path) in line  # it names the file


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--backend", "nope"], "backend = 'nope' is not a known backend"),
        (["--plugins", "retry,nope"], "'nope' is not an installed plugin"),
    ],
)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_unknown_backend_or_plugin_is_one_line_and_exit_2(capsys, command, flags, says):
    assert says in run_main(capsys, [*command, *flags])


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_one_line_and_exit_2(capsys, port):
    line = run_main(capsys, ["serve", "--transport", "http", "--port", port])
    assert line.startswith("mcp-ble serve: argument --port:") and "--help" in line, line


def test_an_unresolvable_host_is_one_line_and_exit_2(capsys):
    # .invalid never resolves (RFC 2606, section 2).
    line = run_main(capsys, ["serve", "--transport", "http", "--host", "nowhere.invalid"])
    assert "--host nowhere.invalid: cannot resolve it" in line, line


def test_a_busy_http_port_is_one_line_and_exit_2(capsys, busy_port):
    line = run_main(
        capsys,
        ["serve", "--backend", "simulated", "--transport", "http", "--port", str(busy_port)],
    )
    assert f"--port {busy_port}: cannot listen there" in line, line


def test_a_busy_metrics_port_stops_serve_at_start(tmp_path, busy_port):
    """A real process, a really busy port: one line, exit 2, and it does not go on serving."""
    config = write_config(tmp_path, SIM + f"[metrics]\nhttp_port = {busy_port}\n")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_ble.core.cli", "serve", "--config", str(config)],
        stdin=subprocess.PIPE,  # kept open: a server that went on would wait here forever
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert f"metrics.http_port = {busy_port}: cannot serve /metrics" in line, line
    assert proc.stdout == ""
    assert time.monotonic() - started < 60


async def test_a_busy_metrics_port_closes_what_the_app_started(tmp_path, busy_port):
    app = make_app(tmp_path, f"[metrics]\nhttp_port = {busy_port}\n", time_scale=0)
    with pytest.raises(ConfigError, match="Address already in use"):
        async with app:
            pass
    assert all(task.done() for task in app._tasks)  # sampling stopped with the app


async def test_sampling_runs_without_the_http_exporter(tmp_path):
    """Memory and event-loop lag are sampled by the app's own task, exporter or not."""
    app = make_app(tmp_path, "[metrics]\nsample_interval_s = 0.01\n", time_scale=0)
    async with app:
        value = app.metrics_registry.get_sample_value  # reads without a collection hook
        for _ in range(500):
            if value("ble_memory_usage_bytes"):
                break
            await asyncio.sleep(0.01)
        assert value("ble_memory_usage_bytes")
        assert value("ble_event_loop_lag_seconds") is not None
