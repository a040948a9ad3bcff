"""The auto backend plugin: the first of several backends that starts (``[backends.auto]
order``), by default a real adapter through bleak, else the simulated demo world, loudly."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.traits import BackendTraits

if TYPE_CHECKING:
    from mcp_ble.core.backend import Backend


class AutoSettings(BaseModel):
    """``[backends.auto]``"""

    model_config = ConfigDict(extra="forbid")

    order: list[str] = Field(
        ["bleak", "simulated"],
        description="backends to try, in order; the first that starts serves (each with its "
        "own [backends.<name>] settings)",
    )

    @field_validator("order")
    @classmethod
    def _order(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one backend to try")
        if "auto" in value:
            raise ValueError("auto cannot try itself; name the backends it chooses between")
        if len(set(value)) != len(value):
            raise ValueError("list each backend once")
        return value


def _create(settings: AutoSettings, backends: Any) -> Any:
    from .backend import AutoBackend

    def maker(name: str) -> Callable[[], Backend]:
        return lambda: backends.build(name)

    # traits() of an unknown name fails now, with the list of known ones
    simulated = {name for name in settings.order if backends.traits(name).simulated}
    return AutoBackend([(name, maker(name)) for name in settings.order], simulated)


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register(
        "auto",
        _create,
        settings=AutoSettings,
        description="the first backend in [backends.auto] order that starts (default: bleak, "
        "else the simulated demo world, flagged simulated)",
        traits=BackendTraits(composes=lambda settings: list(settings.order)),
    )
