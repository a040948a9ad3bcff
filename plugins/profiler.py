"""Operation profiling.

Writes one JSON line per finished operation — name, device, handle, duration, bytes, attempts,
outcome, timestamp, and with several radios the radio — to stderr or a file, for operations
slower than ``min_duration_s``. Scans are profiled too. Cheap enough to leave on; pair it with
``MCP_BLE_TRACE_HOOKS=1`` when writing plugins.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_ble.core.errors import ConfigError
from mcp_ble.core.hookspecs import hookimpl


class ProfilerSettings(BaseModel):
    """``[profiler]``"""

    model_config = ConfigDict(extra="forbid")

    path: Path | None = Field(None, description="append JSON lines here (unset: stderr)")
    min_duration_s: float = Field(
        0.0, ge=0, description="only operations at least this slow are written"
    )

    @field_validator("path")
    @classmethod
    def _writable(cls, path: Path | None) -> Path | None:
        """A file that cannot be appended to fails with the settings (startup checks again)."""
        if path is None:
            return None
        if path.is_dir():
            raise ValueError("is a directory; give a file to append JSON lines to")
        folder = path.parent
        if not folder.is_dir():
            raise ValueError(f"folder {str(folder)!r} does not exist; create it or pick another")
        target = path if path.exists() else folder
        if not os.access(target, os.W_OK):
            raise ValueError(f"{str(target)!r} is not writable by this user")
        return path


class ProfilerPlugin:
    settings_model = ProfilerSettings
    settings: ProfilerSettings

    def __init__(self) -> None:
        self._out: IO[str] = sys.stderr
        self._owned = False
        self.written = 0

    @hookimpl
    def mcp_ble_startup(self) -> None:
        path = self.settings.path
        if path is not None:
            try:
                self._out = path.open("a", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise ConfigError(
                    f"profiler.path = {str(path)!r}: cannot append to it "
                    f"({exc.strerror or exc}); give a writable file, or unset it for stderr"
                ) from None
            self._owned = True

    @hookimpl
    def mcp_ble_shutdown(self) -> None:
        if self._owned:
            self._out.close()
            self._owned = False

    def _write(self, record: dict[str, Any]) -> None:
        if record["duration_s"] < self.settings.min_duration_s:
            return
        record["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.written += 1

    @hookimpl
    def mcp_ble_operation_finished(
        self, operation: Any, duration_s: float, nbytes: int, error: Any
    ) -> None:
        line = {
            "name": operation.kind,
            "address": operation.address,
            "handle": operation.handle,
            "duration_s": round(duration_s, 6),
            "bytes": nbytes,
            "attempts": operation.attempts,
            "outcome": "ok" if error is None else error.code,
        }
        if operation.radio:  # several radios: the one it ran on
            line["radio"] = operation.radio
        self._write(line)

    @hookimpl
    def mcp_ble_scan_finished(self, plan: Any, found: int, duration_s: float) -> None:
        self._write(
            {
                "name": "scan",
                "duration_s": round(duration_s, 6),
                "devices": found,
                "requested_s": plan.requested_duration_s,
                "notes": plan.notes,
            }
        )
