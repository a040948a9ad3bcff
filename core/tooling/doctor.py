"""``mcp-ble doctor``: what can run on this machine, and what to do about what cannot.

Everything it knows about backends comes from what each declared when it registered
(:class:`~mcp_ble.core.traits.BackendTraits`): the packages it needs, its system checks (D-Bus and
BlueZ on Linux, for example), whether it is simulated, whether starting it takes an adapter away
from the operating system (then it is probed only when selected) and, for a composite backend,
which backends it would try. Every other backend is started exactly as ``mcp-ble serve`` would,
with a bounded timeout; one that cannot start explains itself through its ``BackendUnavailable``
message, so the fix-it text lives with the backend that knows the problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..errors import BackendUnavailable, BleError, ConfigError
from ..models import ScanFilter
from ..plugin_manager import RegisteredBackends
from ..traits import Finding

REAL_RADIO_HINT = (
    "No Bluetooth adapter answered on this machine (it has no radio, or mcp-ble may not use it). "
    "These backends need none and serve virtual devices (every result says simulated: true): "
)


#: One finding (the name doctor's output and tests know it by).
Check = Finding


@dataclass
class Diagnosis:
    platform: str
    settings: str
    selected: str
    checks: list[Check] = field(default_factory=list)
    real_radio: list[str] = field(default_factory=list)
    selected_ok: bool = False
    summary: str = ""


def _package_checks(catalog: Any) -> list[Check]:
    """Every package a registered backend declared, once, in registration order."""
    checks: list[Check] = []
    seen: set[str] = set()
    for registration in catalog.backends.values():
        for dep in registration.traits.dependencies:
            if dep.distribution in seen:
                continue
            seen.add(dep.distribution)
            try:
                detail = f"{version(dep.distribution)} — {dep.purpose}"
                checks.append(Check("packages", dep.distribution, "ok", detail))
            except PackageNotFoundError:
                fix = (
                    ""
                    if dep.extra
                    else f"reinstall mcp-ble (pip install --force-reinstall {dep.distribution})"
                )
                checks.append(
                    Check(
                        "packages",
                        dep.distribution,
                        "skipped" if dep.extra else "problem",
                        f"not installed — {dep.purpose}",
                        fix,
                    )
                )
    return checks


def _system_checks(catalog: Any) -> list[Check]:
    """Each distinct system check a backend declared, run once."""
    checks: list[Check] = []
    done: list[Any] = []
    for registration in catalog.backends.values():
        check = registration.traits.check
        if check is None or check in done:
            continue
        done.append(check)
        try:
            checks += check()
        except Exception as exc:
            checks.append(
                Check(
                    "system",
                    f"{registration.name} check",
                    "problem",
                    f"the check failed: {type(exc).__name__}: {exc}",
                )
            )
    return checks


async def _probe(
    name: str, backends: RegisteredBackends, timeout_s: float, selected: bool
) -> Check:
    """Build the backend as serve would and start it, within ``timeout_s``."""
    try:
        backend = backends.build(name)
    except BleError as exc:  # typically a missing optional extra: only a problem if selected
        return Check("backends", name, "problem" if selected else "skipped", exc.what, exc.hint)
    except ConfigError as exc:  # its settings (or world file) are wrong: the message says how
        return Check("backends", name, "problem", f"cannot be built: {exc.what}", exc.hint)
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
    health = backend.health
    with contextlib.suppress(Exception):
        await health.close()
        await backend.stop()
    if not health.ready:
        return Check(
            "backends",
            name,
            "problem",
            f"started, but its radio is {health.summary()}",
            "check the adapter or HCI transport and its cable, then run doctor again",
        )
    details = ", ".join(f"{k} {v}" for k, v in info.details.items())
    kind = (
        "serves virtual devices" if info.simulated else "a Bluetooth adapter answered, radio ready"
    )
    return Check("backends", name, "ok", f"{kind}" + (f" ({details})" if details else ""))


#: How long doctor listens on each of several radios to count the devices it hears.
RADIO_SCAN_S = 1.0


async def _probe_radio(
    spec: Any, catalog: Any, backends: RegisteredBackends, timeout_s: float
) -> Check:
    """One ``[[radios]]`` table: build and start it as serve would, listen ``RADIO_SCAN_S``,
    and report its health, slots and the devices it heard."""
    name = f"{spec.name} ({spec.backend})"
    try:
        backend = catalog.backends[spec.backend].factory(spec.settings, backends)
    except BleError as exc:
        return Check("radios", name, "problem", exc.what, exc.hint)
    except ConfigError as exc:  # its table (or world file) is wrong: the message says how
        return Check("radios", name, "problem", f"cannot be built: {exc.what}", exc.hint)
    except Exception as exc:
        return Check("radios", name, "problem", f"cannot be built: {type(exc).__name__}: {exc}")
    heard: set[str] = set()
    try:
        async with asyncio.timeout(timeout_s + RADIO_SCAN_S):
            await backend.start()
            async for adv in backend.scan(RADIO_SCAN_S, ScanFilter()):
                heard.add(adv.address)
    except TimeoutError:
        return Check("radios", name, "problem", f"did not start within {timeout_s:g} s")
    except BleError as exc:
        return Check("radios", name, "problem", exc.what, exc.hint)
    except Exception as exc:
        return Check("radios", name, "problem", f"failed: {type(exc).__name__}: {exc}")
    health = backend.health
    reported = backend.connection_slots()
    limit = reported[1] if reported else None
    if spec.slots is not None:
        limit = spec.slots if limit is None else min(limit, spec.slots)
    used = reported[0] if reported else 0
    with contextlib.suppress(Exception):
        await health.close()
        await backend.stop()
    # as ble_status shows a radio: "ready; slots 0/7" ("lost (why)", "?" for an unknown limit)
    state = health.state if health.ready else f"{health.state} ({health.reason})"
    slots = f"{used}/{'?' if limit is None else limit}"
    return Check(
        "radios",
        name,
        "ok" if health.ready else "problem",
        f"{state}; slots {slots}; heard {len(heard)} device{'' if len(heard) == 1 else 's'} "
        f"in a {RADIO_SCAN_S:g} s scan",
    )


async def diagnose(loaded: Any, catalog: Any, timeout_s: float = 10.0) -> Diagnosis:
    """Every check, in order: packages, system, backends, then the selected backend's verdict
    (with ``[[radios]]``: each radio, and whether any can serve)."""
    settings = loaded.settings
    if settings.radios:
        return await _diagnose_radios(loaded, catalog, timeout_s)
    selected = settings.backend
    diagnosis = Diagnosis(
        platform=f"{sys.platform} ({platform.platform()}), Python {platform.python_version()}",
        settings=str(loaded.config_path),
        selected=selected,
    )
    diagnosis.checks += _package_checks(catalog)
    diagnosis.checks += _system_checks(catalog)
    backends = RegisteredBackends(catalog, settings)
    results: dict[str, Check] = {}
    for name, registration in sorted(catalog.backends.items()):
        traits = registration.traits
        if traits.composes is not None:
            continue
        if traits.takes_adapter and name != selected:
            check = Check(
                "backends",
                name,
                "skipped",
                "not probed: starting it could take an adapter away from the OS",
                f'select it (backend = "{name}") to have doctor try it',
            )
        else:
            check = await _probe(name, backends, timeout_s, selected=name == selected)
        results[name] = check
        diagnosis.checks.append(check)
    simulated = sorted(n for n, r in catalog.backends.items() if r.traits.simulated)
    diagnosis.real_radio = [
        n for n, c in results.items() if c.status == "ok" and n not in simulated
    ]
    verdict = _verdict(selected, catalog, settings, results)
    diagnosis.selected_ok = verdict.status == "ok"
    diagnosis.checks.append(verdict)
    if diagnosis.real_radio:
        diagnosis.summary = (
            f"A Bluetooth adapter answers through: {', '.join(diagnosis.real_radio)}."
        )
    else:
        choices = ", ".join(f'backend = "{name}"' for name in simulated)
        diagnosis.summary = REAL_RADIO_HINT + (choices or "none is installed") + "."
    return diagnosis


async def _diagnose_radios(loaded: Any, catalog: Any, timeout_s: float) -> Diagnosis:
    settings = loaded.settings
    specs = settings.radio_list()
    diagnosis = Diagnosis(
        platform=f"{sys.platform} ({platform.platform()}), Python {platform.python_version()}",
        settings=str(loaded.config_path),
        selected="radios: " + ", ".join(s.name for s in specs),
    )
    diagnosis.checks += _package_checks(catalog)
    diagnosis.checks += _system_checks(catalog)
    backends = RegisteredBackends(catalog, settings)
    radios = [await _probe_radio(spec, catalog, backends, timeout_s) for spec in specs]
    diagnosis.checks += radios
    up = [c.name for c in radios if c.status == "ok"]
    diagnosis.selected_ok = bool(up)
    diagnosis.checks.append(
        Check(
            "selected",
            "radios",
            "ok" if up else "problem",
            f"{len(up)} of {len(radios)} radios serve" if up else "no radio can serve",
            ""
            if len(up) == len(radios)
            else "see the radios above; the others serve meanwhile"
            if up
            else "each radio above says what is wrong",
        )
    )
    simulated = [s.name for s in specs if catalog.backends[s.backend].traits.simulated]
    diagnosis.real_radio = [c.name for c in radios if c.status == "ok"] if not simulated else []
    diagnosis.summary = (
        f"Radios that answer: {', '.join(up)}." if up else "No configured radio answers."
    )
    return diagnosis


def _verdict(selected: str, catalog: Any, settings: Any, results: dict[str, Check]) -> Check:
    registration = catalog.backends.get(selected)
    composes = registration.traits.composes if registration else None
    if composes is None:
        chosen = results.get(selected)
        ok = chosen is not None and chosen.status == "ok"
        return Check(
            "selected",
            selected,
            "ok" if ok else "problem",
            "starts" if ok else f"cannot start: {chosen.detail if chosen else 'not probed'}",
            "" if ok else (chosen.fix if chosen else ""),
        )
    parts = list(composes(settings.backend_settings(selected)))
    for i, part in enumerate(parts):
        check = results.get(part)
        if check is None or check.status != "ok":
            continue
        if i == 0:
            return Check("selected", selected, "ok", f"will use {part}: it starts")
        if catalog.backends[part].traits.simulated:
            detail = (
                f"will serve the SIMULATED devices of {part} (flagged simulated: true): "
                f"{', '.join(parts[:i])} cannot start here"
            )
        else:
            detail = f"will use {part}: {', '.join(parts[:i])} cannot start here"
        return Check(
            "selected", selected, "ok", detail, f'set backend = "{parts[0]}" to require it'
        )
    return Check(
        "selected",
        selected,
        "problem",
        f"none of {', '.join(parts)} can start here",
        "see the backends above",
    )


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
