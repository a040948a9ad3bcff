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

With ``probe = true`` it measures instead: on a device's first connection the core reconnects at
each candidate MTU and times reads of the device's longest readable value; the fastest is kept
for that device and asked for on every later connection.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    probe: bool = Field(
        False, description="measure each candidate MTU on a device's first connection"
    )
    candidates: list[int] = Field(
        default_factory=lambda: [23, 185, 244, 247],
        min_length=1,
        max_length=8,
        description="MTUs the probe measures (each 23..517)",
    )
    remember: int = Field(1024, ge=1, le=1_000_000, description="devices whose best MTU is kept")

    @field_validator("candidates")
    @classmethod
    def _mtus(cls, candidates: list[int]) -> list[int]:
        bad = [m for m in candidates if not 23 <= m <= 517]
        if bad:
            raise ValueError(f"{bad} are not ATT MTUs; use values from 23 to 517")
        return candidates


class MtuPlugin:
    settings_model = MtuSettings
    settings: MtuSettings

    def __init__(self) -> None:
        #: The best MTU per device once probed, and the probes under way or done.
        self.best: dict[str, int] = {}
        self.probes: dict[str, MtuPlan] = {}

    def best_for(self, address: str) -> int | None:
        if address not in self.best:
            probed = self.probes.pop(address, None)
            if probed is None or not probed.measured:
                return None
            self.best[address] = max(probed.measured, key=lambda m: probed.measured[m])
            while len(self.best) > self.settings.remember:
                del self.best[next(iter(self.best))]
        return self.best[address]

    @hookimpl
    def mcp_ble_mtu_plan(self, plan: MtuPlan) -> None:
        if self.settings.probe:
            best = self.best_for(plan.address)
            if best is not None:
                plan.mtu = min(best, plan.max_mtu)
                return
            plan.probe = list(self.settings.candidates)
            plan.mtu = min(plan.probe)
            self.probes[plan.address] = plan  # the core fills plan.measured
            while len(self.probes) > self.settings.remember:
                del self.probes[next(iter(self.probes))]
            return
        if plan.data_length is None:
            return  # nothing to fit: the backend asks for its own
        # No note: ble_connect's mtu and mtu_by say it (every connect result costs tokens).
        plan.mtu = min(fill_mtu(plan.data_length), plan.max_mtu)
