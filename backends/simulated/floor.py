"""Where things are in a world: positions on a floor plan, and ``[[radios]]``, the adapters
placed on it (see :mod:`.radios` for what each hears)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: A place on the floor plan, ``[x, y]`` in metres.
Position = tuple[float, float]


class Radio(BaseModel):
    """``[[radios]]``: one of several adapters sharing the world (a simulated backend names it
    with ``radio``). It hears the devices within ``range_m`` of it; a device with a ``position``
    is heard at its ``rssi`` less the path loss ``10 * path_loss_exponent * log10(d)`` over the
    distance ``d`` (metres, at least 1), a device without one at its ``rssi``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    position: Position = (0.0, 0.0)
    range_m: float = Field(math.inf, gt=0)
    slots: int | None = Field(None, ge=1, le=64)
    sensitivity_dbm: int | None = Field(None, ge=-127, le=0)
    lost_at_s: float | None = Field(None, ge=0)
    back_at_s: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _back_after_lost(self) -> Radio:
        if self.back_at_s is not None and (
            self.lost_at_s is None or self.back_at_s <= self.lost_at_s
        ):
            raise ValueError("back_at_s needs a lost_at_s before it")
        return self
