"""``mcp-ble doctor``: what can run on this machine, and what to do about what cannot.

It reports the installed BLE packages, what the operating system offers (D-Bus and BlueZ on
Linux), and then asks every registered backend to start, exactly as ``mcp-ble serve`` would, with
a bounded timeout. A backend that cannot start explains itself through its ``BackendUnavailable``
message, so the fix-it text lives with the backend that knows the problem. Backends whose probing
would take hardware away from the operating system (bumble opening a USB dongle) are probed only
when they are the selected backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .errors import BackendUnavailable, BleError

#: Optional or core packages a backend needs, and why.
PACKAGES = (
    ("bleak", "bleak backend (Linux BlueZ, macOS, Windows)"),
    ("bleak-retry-connector", "bleak backend connections"),
    ("bumble", "bumble backend (optional extra: pip install 'mcp-ble[bumble]')"),
    (
        "simplepyble",
        "simplepyble backend (optional extra: pip install 'mcp-ble[simplepyble]', BUSL-1.1)",
    ),
)
#: Backends made of other backends: diagnosed through their parts.
COMPOSITE = frozenset({"auto"})
#: Backends whose start() may take a device away from the OS: probed only when selected.
INTRUSIVE = frozenset({"bumble"})
REAL_RADIO_HINT = (
    "No Bluetooth adapter answered on this machine (it has no radio, or mcp-ble may not use it). "
    'The simulated backend needs none: backend = "simulated" serves virtual devices; the shipped '
    'backend = "auto" falls back to it by itself and marks every result simulated: true.'
)


@dataclass
class Check:
    """One finding. ``status`` is ``ok``, ``problem`` or ``skipped``."""

    area: str
    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Diagnosis:
    platform: str
    settings: str
    selected: str
    checks: list[Check] = field(default_factory=list)
    real_radio: list[str] = field(default_factory=list)
    selected_ok: bool = False
    summary: str = ""


def _package_checks() -> list[Check]:
    checks = []
    for name, purpose in PACKAGES:
        try:
            checks.append(Check("packages", name, "ok", f"{version(name)} — {purpose}"))
        except PackageNotFoundError:
            optional = "optional extra" in purpose
            checks.append(
                Check(
                    "packages",
                    name,
                    "skipped" if optional else "problem",
                    f"not installed — {purpose}",
                    "" if optional else f"reinstall mcp-ble (pip install --force-reinstall {name})",
                )
            )
    return checks


def _system_checks() -> list[Check]:
    if not sys.platform.startswith("linux"):
        return []
    checks = []
    bus = Path("/run/dbus/system_bus_socket")
    if bus.exists():
        checks.append(Check("system", "D-Bus system bus", "ok", str(bus)))
    else:
        checks.append(
            Check(
                "system",
                "D-Bus system bus",
                "problem",
                f"{bus} is missing: bleak and simplepyble reach BlueZ through it",
                "install and start dbus and bluez (sudo apt install bluez; sudo systemctl "
                "start bluetooth); in a container, mount /run/dbus from the host",
            )
        )
    sysfs = Path("/sys/class/bluetooth")
    adapters = sorted(p.name for p in sysfs.iterdir()) if sysfs.is_dir() else []
    if adapters:
        checks.append(Check("system", "kernel Bluetooth adapters", "ok", ", ".join(adapters)))
    else:
        checks.append(
            Check(
                "system",
                "kernel Bluetooth adapters",
                "problem",
                "none in /sys/class/bluetooth",
                "plug in a Bluetooth adapter (or check `rfkill list`); the bumble backend can "
                "also drive a USB dongle directly",
            )
        )
    return checks


async def _probe(
    name: str, registration: Any, settings: Any, app: Any, timeout_s: float, selected: bool
) -> Check:
    """Build the backend as serve would and start it, within ``timeout_s``."""
    try:
        backend = registration.factory(settings, app)
    except BleError as exc:  # typically a missing optional extra: only a problem if selected
        return Check("backends", name, "problem" if selected else "skipped", exc.what, exc.hint)
    except Exception as exc:
        return Check("backends", name, "problem", f"cannot be built: {type(exc).__name__}: {exc}")
    try:
        async with asyncio.timeout(timeout_s):
            await backend.start()
    except TimeoutError:
        return Check(
            "backends",
            name,
            "problem",
            f"did not start within {timeout_s:g} s",
            "the Bluetooth stack may be stuck; restart it "
            "(Linux: sudo systemctl restart bluetooth)",
        )
    except BackendUnavailable as exc:
        return Check("backends", name, "problem", exc.what, exc.hint)
    except Exception as exc:
        return Check("backends", name, "problem", f"failed to start: {type(exc).__name__}: {exc}")
    info = backend.info()
    with contextlib.suppress(Exception):
        await backend.stop()
    details = ", ".join(f"{k} {v}" for k, v in info.details.items())
    kind = "virtual devices" if info.simulated else "a Bluetooth adapter answered"
    return Check("backends", name, "ok", f"{kind}" + (f" ({details})" if details else ""))


async def diagnose(loaded: Any, catalog: Any, timeout_s: float = 10.0) -> Diagnosis:
    """Every check, in order: packages, system, backends, then the selected backend's verdict."""
    from .app import BleApp

    settings = loaded.settings
    selected = settings.backend
    diagnosis = Diagnosis(
        platform=f"{sys.platform} ({platform.platform()}), Python {platform.python_version()}",
        settings=str(loaded.config_path),
        selected=selected,
    )
    diagnosis.checks += _package_checks()
    diagnosis.checks += _system_checks()
    app = BleApp.create(loaded, catalog)
    results: dict[str, Check] = {}
    for name, registration in sorted(catalog.backends.items()):
        if name in COMPOSITE:
            continue
        if name in INTRUSIVE and name != selected:
            check = Check(
                "backends",
                name,
                "skipped",
                "not probed: opening its HCI transport could take a dongle away from the OS",
                f'select it (backend = "{name}") to have doctor try its transport',
            )
        else:
            check = await _probe(
                name,
                registration,
                settings.backend_settings(name),
                app,
                timeout_s,
                selected=name == selected,
            )
        results[name] = check
        diagnosis.checks.append(check)
    simulated_names = set()
    for name, check in results.items():
        if check.status == "ok" and "virtual devices" in check.detail:
            simulated_names.add(name)
        elif check.status == "ok":
            diagnosis.real_radio.append(name)
    if selected == "auto":
        bleak = results.get("bleak")
        if bleak is not None and bleak.status == "ok":
            verdict = Check("selected", "auto", "ok", "will use bleak: an adapter answers")
        else:
            verdict = Check(
                "selected",
                "auto",
                "ok",
                "will serve the SIMULATED demo world (flagged simulated: true): bleak cannot "
                "start here",
                'set backend = "bleak" to require real hardware',
            )
    else:
        chosen = results.get(selected)
        ok = chosen is not None and chosen.status == "ok"
        verdict = Check(
            "selected",
            selected,
            "ok" if ok else "problem",
            "starts" if ok else f"cannot start: {chosen.detail if chosen else 'not probed'}",
            "" if ok else (chosen.fix if chosen else ""),
        )
    diagnosis.selected_ok = verdict.status == "ok"
    diagnosis.checks.append(verdict)
    if diagnosis.real_radio:
        diagnosis.summary = (
            f"A Bluetooth adapter answers through: {', '.join(diagnosis.real_radio)}."
        )
    else:
        diagnosis.summary = REAL_RADIO_HINT
    return diagnosis


MARKS = {"ok": "[ok]", "problem": "[!!]", "skipped": "[--]"}


def render(diagnosis: Diagnosis) -> str:
    lines = [
        f"mcp-ble doctor on {diagnosis.platform}",
        f"settings: {diagnosis.settings}; backend = {diagnosis.selected!r}",
    ]
    area = ""
    for check in diagnosis.checks:
        if check.area != area:
            area = check.area
            lines.append(f"\n{area}:")
        lines.append(f"  {MARKS[check.status]} {check.name}: {check.detail}")
        if check.fix:
            label = "fix" if check.status == "problem" else "note"
            lines.append(f"       {label}: {check.fix}")
    lines.append("")
    lines.append(diagnosis.summary)
    return "\n".join(lines)


async def run_doctor(loaded: Any, catalog: Any, as_json: bool = False) -> int:
    """Print the diagnosis. Exit code 0 when the selected backend can run, 1 otherwise."""
    diagnosis = await diagnose(loaded, catalog)
    if as_json:
        print(json.dumps(asdict(diagnosis), indent=2))
    else:
        print(render(diagnosis))
    return 0 if diagnosis.selected_ok else 1
