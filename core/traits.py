"""What a backend declares about itself when it registers, so the core names no backend.

``register(name, factory, settings=..., description=..., traits=BackendTraits(...))`` in
``mcp_ble_register_backends``. ``mcp-ble doctor`` reads the traits: which packages to report, which
system checks to run, whether probing the backend would take an adapter away from the operating
system, whether its devices are simulated, and which backends a composite one is made of.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "problem", "skipped"]


@dataclass
class Finding:
    """One line of ``mcp-ble doctor``: what was checked, what was found, and the fix."""

    area: str
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Dependency:
    """A distribution a backend needs. ``extra`` names the optional extra that installs it
    (``pip install 'mcp-ble[<extra>]'``); without one it is a requirement of mcp-ble itself."""

    distribution: str
    purpose: str
    extra: str | None = None


@dataclass(frozen=True)
class BackendTraits:
    """What the core and ``doctor`` may know about a backend."""

    #: Its devices are virtual: every result it serves says ``simulated: true``.
    simulated: bool = False
    #: Starting it takes a controller away from the operating system (a USB dongle opened
    #: directly): ``doctor`` starts it only when it is the selected backend.
    takes_adapter: bool = False
    #: Packages it needs, reported by ``doctor``.
    dependencies: Sequence[Dependency] = ()
    #: What it needs from the system (D-Bus, a kernel adapter...), as ``doctor`` findings. Shared
    #: by several backends, the same function runs once.
    check: Callable[[], list[Finding]] | None = None
    #: A composite backend: given its settings, the backends it may run, in order of preference.
    #: ``doctor`` reports which would run instead of starting it.
    composes: Callable[[Any], Sequence[str]] | None = None
