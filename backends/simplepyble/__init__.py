"""The simplepyble backend plugin (optional extra ``mcp-ble[simplepyble]``, BUSL-1.1 licence:
free for non-commercial use only, so it is never installed by default)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.errors import BackendUnavailable
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.traits import BackendTraits, Dependency

from ..bluez import bluez_checks

INSTALL_HINT = (
    "install the optional extra: pip install 'mcp-ble[simplepyble]' (SimpleBLE is BUSL-1.1, "
    'free for non-commercial use only), or use backend = "bleak", which needs no extra'
)


class SimplepybleSettings(BaseModel):
    """``[backends.simplepyble]``"""

    model_config = ConfigDict(extra="forbid")

    adapter: int = Field(0, ge=0, description="index of the adapter in get_adapters()")
    start_timeout_s: float = Field(
        5.0, gt=0, le=60, description="give up when the Bluetooth stack has not answered by then"
    )


def import_simplepyble() -> Any:
    """The simplepyble module, or a BackendUnavailable that says how to install it."""
    try:
        import simplepyble
    except ImportError as exc:
        missing = getattr(exc, "name", None) == "simplepyble"
        raise BackendUnavailable(
            "The simplepyble backend needs the simplepyble package, which is not installed"
            if missing
            else f"The simplepyble package is installed but cannot be imported ({exc})",
            INSTALL_HINT if missing else "reinstall it: pip install --force-reinstall simplepyble",
        ) from None
    return simplepyble


def _create(settings: SimplepybleSettings, backends: Any) -> Any:
    from .backend import SimplepybleBackend

    return SimplepybleBackend(
        import_simplepyble(), settings.adapter, start_timeout_s=settings.start_timeout_s
    )


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register(
        "simplepyble",
        _create,
        settings=SimplepybleSettings,
        description="real adapters through SimpleBLE (optional extra, non-commercial licence)",
        traits=BackendTraits(
            dependencies=(
                Dependency(
                    "simplepyble",
                    "simplepyble backend (optional extra: pip install 'mcp-ble[simplepyble]', "
                    "BUSL-1.1)",
                    extra="simplepyble",
                ),
            ),
            check=bluez_checks,
        ),
    )
