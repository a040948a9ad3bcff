"""The simplepyble backend plugin (optional extra ``mcp-ble[simplepyble]``, BUSL-1.1 licence)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.errors import BackendUnavailable
from mcp_ble.core.hookspecs import hookimpl


class SimplepybleSettings(BaseModel):
    """``[backends.simplepyble]``"""

    model_config = ConfigDict(extra="forbid")

    adapter: int = Field(0, ge=0, description="index of the adapter in get_adapters()")


def _create(settings: SimplepybleSettings, app: Any) -> Any:
    raise BackendUnavailable(
        "The simplepyble backend is not implemented yet",
        'use backend = "simulated" for now',
    )


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register(
        "simplepyble",
        _create,
        settings=SimplepybleSettings,
        description="real adapters through SimpleBLE (optional extra, non-commercial licence)",
    )
