"""Mutable plans handed to decision hooks, and the description of an operation in flight."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .models import ScanFilter

OperationKind = Literal[
    "connect",
    "discover",
    "read",
    "write",
    "write_without_response",
    "read_descriptor",
    "write_descriptor",
    "subscribe",
    "unsubscribe",
    "pair",
]

#: Operations that can be repeated without changing the device's state.
IDEMPOTENT: frozenset[str] = frozenset(
    {"connect", "discover", "read", "read_descriptor", "subscribe", "unsubscribe"}
)


#: Operations that are ATT requests on the link: one left unanswered blocks the bearer.
ATT_REQUESTS: frozenset[str] = frozenset(
    {
        "discover",
        "read",
        "write",
        "read_descriptor",
        "write_descriptor",
        "subscribe",
        "unsubscribe",
    }
)


@dataclass(slots=True)
class Operation:
    """One core operation. ``deadline`` is a ``time.monotonic()`` value."""

    kind: OperationKind
    address: str
    deadline: float
    handle: int | None = None
    started: float = field(default_factory=time.monotonic)
    #: When it started on the backend's clock (set by the core): durations reported to plugins
    #: count in the same clock as scans, so a simulated world's figures stay consistent.
    began: float | None = None
    #: Attempts made so far (1 on the first try); set by the core.
    attempts: int = 1
    #: With several radios (core/fleet.py): the radio the last attempt ran on, and whether
    #: another radio that hears the device could take the next connect attempt.
    radio: str = ""
    other_radio: bool = False

    @property
    def idempotent(self) -> bool:
        return self.kind in IDEMPOTENT

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(slots=True)
class ScanPlan:
    """``duration_s`` is what the caller asked for (or the default); plugins may change it.
    ``stop_after``: end the scan once this many distinct matching devices were heard.
    ``quiet_s``: end the scan once no new matching device was heard for this long (after at
    least one was). ``until``: the caller's own rule, checked with each advertisement heard: the
    scan ends once it returns true (``ble_sensors``: a matching reading was heard)."""

    duration_s: float
    scan_filter: ScanFilter
    requested_duration_s: float | None = None
    stop_after: int | None = None
    quiet_s: float | None = None
    notes: list[str] = field(default_factory=list)
    until: Callable[[], bool] | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(slots=True)
class ConnectPlan:
    address: str
    timeout_s: float
    release: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: With several radios: the radio the connect goes to first (None: none can take it now).
    radio: str | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(slots=True)
class MtuPlan:
    """The ATT MTU to ask for on a new link, decided once the link is up. ``data_length`` is the
    link layer's payload per packet (None: unknown), ``max_mtu`` the largest this side offers;
    set ``mtu`` (23..max_mtu) to ask for it, or leave None for the backend's own choice. The
    peer may answer with less: the link gets the smaller of the two. A plugin may keep the plan:
    the core fills ``measured`` when it probes."""

    address: str
    data_length: int | None
    max_mtu: int
    mtu: int | None = None
    notes: list[str] = field(default_factory=list)
    #: Set to candidate MTUs to have the core measure each before the connect returns: it
    #: reconnects at each, times reads of the device's longest readable value, fills
    #: ``measured`` (MTU -> bytes/s) and leaves the link at the fastest.
    probe: list[int] | None = None
    measured: dict[int, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(slots=True)
class SubscribePlan:
    """``buffer_size``: notifications kept for the caller; older ones are dropped and counted."""

    address: str
    handle: int
    uuid: str
    buffer_size: int
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(slots=True)
class WritePlan:
    address: str
    handle: int
    data: bytes
    response: bool
    mtu: int
    chunks: list[bytes] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.chunks:
            self.chunks = [self.data]

    def note(self, text: str) -> None:
        self.notes.append(text)
