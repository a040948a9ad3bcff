"""The write policy (``server.write_policy``), enforced in the core for every write.

What counts as a write: a characteristic write, a descriptor write (a Client Characteristic
Configuration descriptor, 0x2902, included when written with ``ble_write_descriptor``), pairing
(it changes the bonds stored on both sides), and anything a plugin sends. Subscribing writes the
CCCD too, but it only asks the device to report values, so it counts as a read.

``BleApp`` asks :meth:`WriteGuard.authorized` after every plan hook has run, with the bytes that
will actually go out, so a plugin that changes or adds chunks is checked on what it sends. The
backend's write, write_descriptor and pair methods are wrapped at start-up to refuse any call the
guard did not authorize. Plugins have no write method on their surface (``PluginApp``): they send
by changing a write plan, which is checked here; one that reaches past its surface into the core
or the backend is checked or refused too.

Modes: ``read_only`` refuses every write; ``open`` allows every write; ``allowlist`` allows the
(device, characteristic) pairs of ``server.allowlist``; ``confirm`` allows listed pairs and asks a
person about every other write through the approver of the MCP request that caused it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .audit import AuditLog
from .errors import BleError, NotPermitted
from .gatt import label

if TYPE_CHECKING:
    from .backend import Backend
    from .settings import AllowEntry, ServerSettings
    from .tracker import AdvertisementTracker

log = logging.getLogger("mcp_ble.policy")

WriteKind = Literal["characteristic", "descriptor", "cccd", "pair"]
CCCD = "00002902-0000-1000-8000-00805f9b34fb"


@dataclass(frozen=True, slots=True)
class WriteAttempt:
    """What the core is about to send. ``uuid``/``handle`` name the characteristic (for a
    descriptor write, the one it belongs to); ``data`` is every byte that goes out, joined."""

    kind: WriteKind
    address: str
    data: bytes = b""
    uuid: str | None = None
    handle: int | None = None
    descriptor: str | None = None
    descriptor_handle: int | None = None
    chunks: int = 1
    #: The names of the characteristic and descriptor, for the person asked to approve.
    names: tuple[str | None, str | None] = (None, None)

    def describe(self) -> str:
        if self.kind == "pair":
            return f"pairing with {self.address}"
        return f"writing {self.target()} on {self.address}"

    def sentence(self) -> str:
        """:meth:`describe` as the start of a sentence."""
        text = self.describe()
        return text[0].upper() + text[1:]

    def target(self) -> str:
        if self.kind == "pair":
            return "pairing"
        what = f"characteristic {label(self.uuid or '', self.names[0])} (handle {self.handle})"
        if self.descriptor is not None:
            return f"descriptor {label(self.descriptor, self.names[1])} of {what}"
        return what


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: Short reason for the audit log: open, allowlisted, approved, read_only, not_allowlisted,
    #: declined, cannot_ask, not_asked.
    reason: str
    error: NotPermitted | None = None


#: Decides a write the policy leaves to a person (``confirm``); set per MCP request.
Approver = Callable[[WriteAttempt, "WriteGuard"], Awaitable[Decision]]
current_approver: ContextVar[Approver | None] = ContextVar("mcp_ble_approver", default=None)
#: The MCP session a request came through, for the audit log; set per MCP request.
current_session: ContextVar[str | None] = ContextVar("mcp_ble_session", default=None)
#: The write the guard authorized, while it is being sent.
_permit: ContextVar[WriteAttempt | None] = ContextVar("mcp_ble_write_permit", default=None)


def how_to_allow(policy: str) -> str:
    return (
        "the operator can set server.write_policy to 'confirm' (a person approves each write), "
        "'allowlist' or 'open', or list the pair in server.allowlist"
        if policy == "read_only"
        else "ask the operator to list the (device, characteristic) pair in server.allowlist, "
        "or to set server.write_policy = 'open'"
    )


class WriteGuard:
    """Applies the policy, logs every attempt, and lets authorized writes through the backend."""

    def __init__(self, settings: ServerSettings, tracker: AdvertisementTracker) -> None:
        self.settings = settings
        self.policy = settings.write_policy
        self.tracker = tracker
        self.audit = AuditLog(settings)

    # ------------------------------------------------------------------ decisions

    def listed(self, attempt: WriteAttempt) -> bool:
        return any(self._matches(entry, attempt) for entry in self.settings.allowlist)

    def _matches(self, entry: AllowEntry, attempt: WriteAttempt) -> bool:
        if entry.device != attempt.address:
            record = self.tracker.get(attempt.address)
            name = record.name if record else None
            if not name or not fnmatch.fnmatchcase(name.casefold(), entry.device.casefold()):
                return False
        wanted = entry.characteristic
        if attempt.kind == "pair" or wanted == "pair":
            return attempt.kind == "pair" and wanted == "pair"
        if wanted.startswith("#"):
            return attempt.handle == int(wanted[1:])
        return attempt.uuid == wanted

    async def decide(self, attempt: WriteAttempt) -> Decision:
        policy = self.policy
        if policy == "open":
            return Decision(True, "open")
        if policy == "read_only":
            return Decision(
                False,
                "read_only",
                NotPermitted(
                    f"This server is read-only (server.write_policy = 'read_only'): "
                    f"{attempt.describe()} was refused; nothing was sent",
                    how_to_allow(policy),
                ),
            )
        if self.listed(attempt):
            return Decision(True, "allowlisted")
        if policy == "allowlist":
            return Decision(
                False,
                "not_allowlisted",
                NotPermitted(
                    f"{attempt.sentence()} is refused: the pair is not in "
                    "server.allowlist (server.write_policy = 'allowlist'); nothing was sent",
                    how_to_allow(policy),
                ),
            )
        approver = current_approver.get()
        if approver is None:
            return Decision(
                False,
                "not_asked",
                NotPermitted(
                    f"{attempt.sentence()} needs a person's approval "
                    "(server.write_policy = 'confirm'), and it was not asked for by a write tool "
                    "a person could be asked about (a plugin, a background task, or pairing "
                    "while connecting asked for it); nothing was sent",
                    how_to_allow(policy),
                ),
            )
        return await approver(attempt, self)

    # ------------------------------------------------------------------ enforcement

    @contextlib.asynccontextmanager
    async def authorized(self, attempt: WriteAttempt) -> AsyncIterator[None]:
        """Decide; refuse (logged) or let the body send it (logged with its outcome)."""
        session = current_session.get()
        decision = await self.decide(attempt)
        if not decision.allowed:
            self.audit.record(attempt, session, self.policy, decision.reason, "refused")
            assert decision.error is not None
            raise decision.error
        token = _permit.set(attempt)
        try:
            yield
        except BleError as exc:
            self.audit.record(attempt, session, self.policy, decision.reason, "failed", exc.code)
            raise
        except BaseException as exc:
            self.audit.record(
                attempt, session, self.policy, decision.reason, "failed", type(exc).__name__
            )
            raise
        else:
            self.audit.record(attempt, session, self.policy, decision.reason, "sent")
        finally:
            _permit.reset(token)

    def permit(self, kind: str, address: str, handle: int | None, data: bytes) -> None:
        """Raise unless the write being sent is the one authorized (by the same task)."""
        attempt = _permit.get()
        ok = attempt is not None and attempt.address == address
        if ok and attempt is not None:
            if kind == "pair":
                ok = attempt.kind == "pair"
            elif kind == "write_descriptor":
                ok = attempt.descriptor_handle == handle and attempt.data == data
            else:
                ok = attempt.kind == "characteristic" and attempt.handle == handle
                ok = ok and data in attempt.data
        if not ok:
            refused = WriteAttempt(
                "pair" if kind == "pair" else "characteristic", address, data, handle=handle
            )
            self.audit.record(refused, current_session.get(), self.policy, "bypass", "refused")
            log.warning("refused a %s on %s past the write policy", kind, address)
            raise NotPermitted(
                f"A {kind.replace('_', ' ')} on {address} was sent past the write policy "
                "(straight to the backend) and was refused; nothing was sent",
                "a plugin sends by changing a write plan (mcp_ble_write_plan), which the policy "
                "checks",
            )

    def guard_backend(self, backend: Backend) -> None:
        """Wrap the backend's writing methods so that only authorized writes reach the radio."""
        write, write_descriptor, pair = backend.write, backend.write_descriptor, backend.pair

        async def guarded_write(address: str, handle: int, data: bytes, response: bool) -> Any:
            self.permit("write", address, handle, data)
            return await write(address, handle, data, response)

        async def guarded_write_descriptor(address: str, handle: int, data: bytes) -> Any:
            self.permit("write_descriptor", address, handle, data)
            return await write_descriptor(address, handle, data)

        async def guarded_pair(address: str) -> Any:
            self.permit("pair", address, None, b"")
            return await pair(address)

        backend.write = guarded_write  # type: ignore[method-assign]
        backend.write_descriptor = guarded_write_descriptor  # type: ignore[method-assign]
        backend.pair = guarded_pair  # type: ignore[method-assign]
