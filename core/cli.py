"""The ``mcp-ble`` command line: serve, scan, plugins, config show, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import BleError, ConfigError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (what was wrong, where the help is), exit code 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port; give 1-65535 (0: any free)")
    return port


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings file (TOML); default: the shipped config/default.toml",
    )
    parser.add_argument("--backend", help="backend to run (overrides the settings file)")
    parser.add_argument(
        "--plugins",
        help="comma-separated optimization plugins to enable, in order "
        "(overrides the settings file; '' for none)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mcp-ble",
        description="MCP server for Bluetooth Low Energy with pluggable backends and plugins.",
    )
    parser.add_argument("--version", action="version", version=f"mcp-ble {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    _common(serve)
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address")
    serve.add_argument("--port", type=_port, default=8000, help="HTTP port (path /mcp)")

    scan = sub.add_parser("scan", help="scan once and print a table of devices")
    _common(scan)
    scan.add_argument("--duration", type=float, default=None, help="seconds (default: settings)")
    scan.add_argument("--name", help="name contains")
    scan.add_argument("--service", help="advertised service UUID, e.g. 180d")
    scan.add_argument("--min-rssi", type=int)
    scan.add_argument("--json", action="store_true", help="print JSON instead of a table")

    plugins = sub.add_parser("plugins", help="list available plugins and the hooks each implements")
    _common(plugins)

    config = sub.add_parser("config", help="inspect settings")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    show = config_sub.add_parser("show", help="effective settings and where each value came from")
    _common(show)
    show.add_argument("--json", action="store_true")

    doctor = sub.add_parser(
        "doctor", help="which backends can run here, whether an adapter answers, what to fix"
    )
    _common(doctor)
    doctor.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="a real MCP client session against the demo world")
    _common(demo)

    bench = sub.add_parser(
        "bench", help="benchmarks on the simulated radio (virtual clock), beside the ideal figures"
    )
    _common(bench)
    from .tooling.bench.command import add_arguments as bench_arguments

    bench_arguments(bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or (args.command == "config" and not args.config_command):
        parser.print_help(sys.stderr if args.command else sys.stdout)
        return EXIT_USAGE if args.command else 0
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        # stdout's reader closed it (mcp-ble doctor --json | head): nothing more to say, and
        # the interpreter's last flush must not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except ConfigError as exc:
        print(f"mcp-ble: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BleError as exc:
        print(f"mcp-ble: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    """(LoadedSettings, PluginCatalog) from the files, environment and flags."""
    from .plugin_manager import PluginCatalog
    from .settings import build_settings_class, load_settings

    catalog = PluginCatalog.discover()
    cls = build_settings_class(
        {name: reg.settings for name, reg in catalog.backends.items()}, catalog.sections
    )
    cli: dict[str, Any] = {"backend": args.backend}
    if args.plugins is not None:
        cli["plugins"] = args.plugins
    loaded = load_settings(cls, args.config, cli)
    # An unknown backend or plugin name fails here, for every command, not only at start.
    catalog.resolve_settings(loaded.settings, loaded.config_path)
    return loaded, catalog


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "bench":
        from .tooling.bench.command import run_bench

        return run_bench(args, load)
    if args.command == "demo":
        from .tooling.demo import demo_added, demo_plugins, run_demo

        # Bad settings end here, with one line, not in the server the demo starts.
        loaded, catalog = load(args)
        plugins = args.plugins
        if plugins is None:
            plugins = demo_plugins(loaded.settings.plugins, catalog.plugins)
        try:
            added = demo_added(loaded.settings.plugins, plugins)
            return asyncio.run(run_demo(args.config, args.backend, plugins, added))
        except Exception as exc:
            if not _connection_closed(exc):
                raise
            print(
                "mcp-ble demo: the server closed the session (its own message is above)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    loaded, catalog = load(args)
    if args.command == "config":
        return _config_show(loaded, args.json)
    if args.command == "plugins":
        return _plugins(loaded, catalog)
    if args.command == "doctor":
        from .tooling.doctor import run_doctor

        return asyncio.run(run_doctor(loaded, catalog, args.json))
    from .app import BleApp

    if args.command == "serve" and args.transport == "http":
        _check_listen(args.host, args.port)
    app = BleApp.create(loaded, catalog)
    if args.command == "serve":
        return asyncio.run(_serve(app, args))
    if args.command == "scan":
        return asyncio.run(_scan(app, args))
    raise AssertionError(args.command)


def _connection_closed(exc: BaseException) -> bool:
    """The MCP client's "Connection closed" error, possibly inside exception groups."""
    from mcp.shared.exceptions import MCPError
    from mcp.types import CONNECTION_CLOSED

    if isinstance(exc, BaseExceptionGroup):
        return any(_connection_closed(e) for e in exc.exceptions)
    return isinstance(exc, MCPError) and exc.error.code == CONNECTION_CLOSED


def _check_listen(host: str, port: int) -> None:
    """Resolve and bind ``host:port`` once before anything starts, so an unknown host or a busy
    port ends ``serve`` with one line and exit code 2 (the HTTP server would exit with 1 or 3)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(
            f"--host {host}: cannot resolve it ({reason}); give an IP address "
            "or a name this machine resolves"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                "choose a free port or another address"
            ) from None


async def _serve(app: Any, args: argparse.Namespace) -> int:
    from .server import build_server

    security = None
    if args.transport == "http":
        from .http import http_security

        # Refused before anything starts: off loopback without a token is exit code 2.
        security = http_security(app.settings.server, args.host, args.port)
    # Start the backend before speaking MCP, so a missing adapter fails fast with exit code 2.
    async with app:
        if security is not None:
            server = build_server(
                app, manage_app=False, token_verifier=security.token_verifier, auth=security.auth
            )
            await server.run_streamable_http_async(
                host=args.host,
                port=args.port,
                transport_security=security.transport,
                session_idle_timeout=app.settings.server.http_session_idle_s,
            )
        else:
            await build_server(app, manage_app=False).run_stdio_async()
    return 0


async def _scan(app: Any, args: argparse.Namespace) -> int:
    from .models import ScanFilter
    from .outputs import device_out
    from .values import parse_uuid

    scan_filter = ScanFilter(
        name=args.name,
        service_uuid=parse_uuid(args.service) if args.service else None,
        min_rssi=args.min_rssi,
    )
    async with app:
        outcome = await app.scan(args.duration, scan_filter)
        simulated = app.radio.info().simulated
        rows = [device_out(r, app.now(), codec=app.codec) for r in outcome.devices]
    if args.json:
        print(json.dumps({"simulated": simulated, "devices": [r.dump() for r in rows]}, indent=2))
        return 0
    print(
        f"{len(rows)} devices in {outcome.duration_s:.1f} s "
        f"({outcome.heard} advertisements){' [SIMULATED]' if simulated else ''}"
    )
    several = any(r.radio for r in rows)  # the radio hearing each best, of several
    table = [
        ("ADDRESS", "RSSI", *(("RADIO",) if several else ()), "NAME", "SERVICES", "MANUFACTURER")
    ]
    for r in rows:
        services = ", ".join(r.services or ())
        makers = ", ".join(r.manufacturer_data or ())
        radio = (r.radio or "-",) if several else ()
        table.append(
            (r.address, str(r.rssi), *radio, r.name or "-", services or "-", makers or "-")
        )
    _print_table(table)
    for note in outcome.plan.notes:
        print(f"note: {note}")
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _plugins(loaded: Any, catalog: Any) -> int:
    from .plugin_manager import build_plugin_manager, hooks_of, instantiate

    settings = loaded.settings
    enabled = set(catalog.expand(settings.plugins))
    selected_backend_plugin = catalog.backends.get(settings.backend)
    rows = [("PLUGIN", "STATUS", "ORIGIN", "HOOKS")]
    for name, obj in catalog.plugins.items():
        backends = [b for b, reg in catalog.backends.items() if reg.plugin == name]
        if name in enabled:
            status = "enabled"
        elif selected_backend_plugin and selected_backend_plugin.plugin == name:
            status = "backend in use"
        elif backends:
            status = "backend available"
        else:
            status = "available"
        instance = instantiate(obj)
        pm = build_plugin_manager([(name, instance)])
        hooks = ", ".join(h.removeprefix("mcp_ble_") for h in hooks_of(pm, instance))
        label = name + (f" ({', '.join(backends)})" if backends else "")
        rows.append((label, status, catalog.origins[name], hooks))
    for name, why in catalog.broken.items():
        rows.append((name, "BROKEN", why, "-"))
    _print_table(rows)
    return 0


def _config_show(loaded: Any, as_json: bool) -> int:
    rows = loaded.rows()
    if as_json:
        print(
            json.dumps(
                [{"key": k, "value": v, "source": s} for k, v, s in rows], indent=2, default=str
            )
        )
        return 0
    print(f"# settings file: {loaded.config_path}")
    table = [("KEY", "VALUE", "SOURCE")]
    table += [(k, json.dumps(v, default=str), s) for k, v, s in rows]
    _print_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
