"""The bleak backend plugin: real adapters on Linux (BlueZ), macOS (CoreBluetooth) and Windows
(WinRT)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.traits import BackendTraits, Dependency

from ..bluez import bluez_checks


class BleakSettings(BaseModel):
    """``[backends.bleak]``"""

    model_config = ConfigDict(extra="forbid")

    adapter: str | None = Field(
        None, description="adapter to use, e.g. 'hci1' (Linux only; default: the system's)"
    )
    scanning_mode: Literal["active", "passive"] = Field(
        "active", description="passive scans send no scan requests (not on macOS)"
    )
    pair_on_connect: bool = Field(
        False, description="pair while connecting where the platform can (Linux, Windows)"
    )
    start_timeout_s: float = Field(
        5.0, gt=0, le=60, description="give up when the Bluetooth stack has not answered by then"
    )
    mtu_wait_s: float = Field(
        1.0, ge=0, le=10, description="wait this long after connecting for the MTU exchange"
    )


def _create(settings: BleakSettings, backends: Any) -> Any:
    from .backend import BleakBackend

    return BleakBackend(
        settings.adapter,
        scanning_mode=settings.scanning_mode,
        pair_on_connect=settings.pair_on_connect,
        start_timeout_s=settings.start_timeout_s,
        mtu_wait_s=settings.mtu_wait_s,
    )


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register(
        "bleak",
        _create,
        settings=BleakSettings,
        description="real adapters through bleak",
        traits=BackendTraits(
            dependencies=(
                Dependency("bleak", "bleak backend (Linux BlueZ, macOS, Windows)"),
                Dependency("bleak-retry-connector", "bleak backend connections"),
            ),
            check=bluez_checks,
        ),
    )
