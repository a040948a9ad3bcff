"""ATT MTU optimization at run time.

A notification or write without response of ``MTU - 3`` bytes travels as an ATT PDU of ``MTU``
bytes plus a 4-byte L2CAP header (Core spec Vol 3, Part A, 3.1). With Data Length Extension a
link-layer packet carries up to 251 bytes (Vol 6, Part B, 4.5.10), so MTU 247 fills exactly one
packet, while a larger MTU fragments each PDU into several packets and costs more air time per
byte (``mcp-ble bench --only mtu``: MTU 247 moves 96 kB/s, 517 about 68 kB/s on the same link).

By default the plugin asks for the MTU that fills the link's data length exactly (247 with DLE,
23 without), from the link parameters the backend reports. Backends that send the MTU request
themselves (bumble, simulated) honour it; where the operating system negotiates the MTU (BlueZ,
CoreBluetooth, WinRT) the link keeps what the OS chose and ``ble_connect`` says ``mtu_by: os``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import MtuPlan

#: L2CAP basic header: length and channel id (Core spec Vol 3, Part A, 3.1).
L2CAP_HEADER = 4


def fill_mtu(data_length: int) -> int:
    """The ATT MTU whose PDUs fill one link-layer packet of ``data_length`` octets."""
    return max(23, data_length - L2CAP_HEADER)


class MtuSettings(BaseModel):
    """``[mtu]``"""

    model_config = ConfigDict(extra="forbid")


class MtuPlugin:
    settings_model = MtuSettings
    settings: MtuSettings

    @hookimpl
    def mcp_ble_mtu_plan(self, plan: MtuPlan) -> None:
        if plan.data_length is None:
            return  # nothing to fit: the backend asks for its own
        # No note: ble_connect's mtu and mtu_by say it (every connect result costs tokens).
        plan.mtu = min(fill_mtu(plan.data_length), plan.max_mtu)
