"""The audit log: one JSON line per write attempt, allowed or refused.

Fields: ``time`` (ISO 8601 UTC), ``session`` (the MCP session's id, core/sessions.py; None
outside a session), ``device``, ``kind`` (characteristic, descriptor, cccd, pair),
``characteristic`` (UUID) and ``handle``, ``descriptor`` (UUID, for descriptor writes),
``length`` (bytes), ``policy`` (``server.write_policy``), ``decision`` (why it was allowed or
refused), ``outcome`` (``sent``, ``refused`` or ``failed``) with ``error`` (the error code) on
failure, and ``value`` (hex) only with ``server.audit_values = true``. Written to stderr or to a
file rotated by size.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .policy import WriteAttempt
    from .settings import ServerSettings


class AuditLog:
    def __init__(self, settings: ServerSettings) -> None:
        self.include_values = settings.audit_values
        self.target = settings.audit_log
        handler: logging.Handler
        if self.target == "stderr":
            handler = logging.StreamHandler(sys.stderr)
        else:
            handler = logging.handlers.RotatingFileHandler(
                self.target,
                maxBytes=settings.audit_max_bytes,
                backupCount=settings.audit_backups,
                encoding="utf-8",
                delay=True,
            )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.handler = handler
        self.lines = 0

    def record(
        self,
        attempt: WriteAttempt,
        session: str | None,
        policy: str,
        decision: str,
        outcome: str,
        error: str | None = None,
    ) -> None:
        line: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "session": session,
            "device": attempt.address,
            "kind": attempt.kind,
            "characteristic": attempt.uuid,
            "handle": attempt.handle,
        }
        if attempt.descriptor is not None:
            line["descriptor"] = attempt.descriptor
        line.update(length=len(attempt.data), policy=policy, decision=decision, outcome=outcome)
        if error is not None:
            line["error"] = error
        if self.include_values:
            line["value"] = attempt.data.hex()
        text = json.dumps(line, separators=(",", ":"))
        self.handler.handle(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))
        self.lines += 1

    def close(self) -> None:
        self.handler.close()
