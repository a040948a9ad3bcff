"""Chunked transfer and MTU-sized writes.

One write without response carries at most MTU−3 bytes, and one attribute at most 512. With this
plugin a ``ble_write`` of up to 64 KiB becomes a stream of writes sized to the link's negotiated
MTU — the largest payload the link carries per packet, which is what "MTU optimization" buys: the
stack negotiates the MTU (up to 517) at connect time and the chunks follow it, up to the 512 bytes
one attribute value holds. Suited to stream characteristics such as a UART; a characteristic that
expects one atomic value must not be fed pieces, so the plugin is opt-in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import WritePlan
from mcp_ble.core.values import MAX_ATTRIBUTE_LEN


class ChunkingSettings(BaseModel):
    """``[chunking]``"""

    model_config = ConfigDict(extra="forbid")

    with_response: Literal["mtu", "attribute"] = Field(
        "attribute",
        description="writes with response: 'attribute' splits only beyond 512 bytes (each piece a "
        "long write); 'mtu' sends MTU−3 pieces (no Prepare/Execute round trips)",
    )
    max_chunk: int | None = Field(
        None, ge=1, le=512, description="upper bound on a piece, below what the MTU allows"
    )


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


class ChunkingPlugin:
    settings_model = ChunkingSettings
    settings: ChunkingSettings

    @hookimpl
    def mcp_ble_write_plan(self, plan: WritePlan) -> None:
        # A piece is at most MTU-3 bytes (one packet), and never more than one attribute holds
        # (512, Core spec Vol 3, Part F, 3.2.9): at MTU 516-517, MTU-3 would exceed it.
        size = MAX_ATTRIBUTE_LEN
        if not (plan.response and self.settings.with_response == "attribute"):
            size = min(plan.mtu - 3, MAX_ATTRIBUTE_LEN)
        if self.settings.max_chunk:
            size = min(size, self.settings.max_chunk)
        if len(plan.data) <= size:
            return
        plan.chunks = split(plan.data, size)
        plan.note(
            f"chunking: sent {len(plan.data)} bytes as {len(plan.chunks)} writes of up to "
            f"{size} bytes (MTU {plan.mtu})"
        )
