"""The bumble backend plugin (optional extra ``mcp-ble[bumble]``): bumble's own host stack on an
HCI controller — a USB dongle, a serial HCI board, a TCP bridge or the Android emulator — with no
operating-system Bluetooth stack in the way."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.traits import BackendTraits, Dependency

_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


class BumbleSettings(BaseModel):
    """``[backends.bumble]``"""

    model_config = ConfigDict(extra="forbid")

    transport: str = Field(
        "usb:0",
        description="HCI transport: usb:0, serial:/dev/ttyUSB0,1000000, tcp-client:HOST:PORT, "
        "hci-socket:0, android-netsim, ...",
    )
    address: str | None = Field(
        None, description="our random static address (default: a new one at every start)"
    )
    mtu: int = Field(
        517,
        ge=23,
        le=517,
        description="the largest ATT MTU to ask for (the mtu plugin may ask for less)",
    )
    start_timeout_s: float = Field(
        10.0, gt=0, le=120, description="give up opening the controller after this long"
    )

    att_timeout_s: float = Field(
        30.0,
        gt=0,
        le=30,
        description="ATT transaction timeout: a request unanswered this long closes the link "
        "(the Core spec's 30 s; shorter notices a vanished device sooner)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError("use the form 'F0:12:34:56:78:9A'")
        return value.upper() if value else value


def _create(settings: BumbleSettings, backends: Any) -> Any:
    from .backend import BumbleBackend

    return BumbleBackend(
        settings.transport,
        address=settings.address,
        mtu=settings.mtu,
        start_timeout_s=settings.start_timeout_s,
        att_timeout_s=settings.att_timeout_s,
    )


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register(
        "bumble",
        _create,
        settings=BumbleSettings,
        description="bumble's userspace host stack on an HCI controller (USB dongle, serial, TCP)",
        traits=BackendTraits(
            # opening usb:0 detaches the dongle from the kernel's Bluetooth stack
            takes_adapter=True,
            dependencies=(
                Dependency(
                    "bumble",
                    "bumble backend (optional extra: pip install 'mcp-ble[bumble]')",
                    extra="bumble",
                ),
            ),
        ),
    )
