"""The bleak backend plugin: real adapters on Linux (BlueZ), macOS and Windows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.errors import BackendUnavailable
from mcp_ble.core.hookspecs import hookimpl


class BleakSettings(BaseModel):
    """``[backends.bleak]``"""

    model_config = ConfigDict(extra="forbid")

    adapter: str | None = Field(None, description="adapter to use, e.g. 'hci1' (Linux only)")


def _create(settings: BleakSettings, app: Any) -> Any:
    raise BackendUnavailable(
        "The bleak backend is not implemented yet",
        'use backend = "simulated" for now',
    )


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register("bleak", _create, settings=BleakSettings, description="real adapters through bleak")
