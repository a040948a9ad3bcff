"""The simulated backend plugin: virtual devices from a world file (``config/worlds/``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.traits import BackendTraits


class SimulatedSettings(BaseModel):
    """``[backends.simulated]``"""

    model_config = ConfigDict(extra="forbid")

    world: str = Field("demo", description="a bundled world name or a path to a world TOML file")
    time_scale: float = Field(
        1.0,
        ge=0,
        le=100,
        description="1 = real time, 0.01 = a hundred times faster, 0 = a virtual clock "
        "(simulated time jumps ahead instantly)",
    )
    max_mtu: int = Field(517, ge=23, le=517, description="the largest ATT MTU the adapter offers")
    seed: int | None = Field(
        None, description="random seed of the simulation; unset = the world file's seed"
    )
    virtual_idle: Literal["frozen", "wall"] = Field(
        "frozen",
        description="with time_scale = 0, what simulated time does while no operation waits: "
        "'frozen' (runs are reproducible) or 'wall' (it follows the wall clock, so "
        "notification streams keep flowing between calls)",
    )

    radio: str | None = Field(
        None,
        description="which of the world's [[radios]] this backend is; backends naming radios "
        "of the same world (and seed, time_scale, virtual_idle, max_mtu) share its devices and "
        "clock. Unset: the world's single adapter, hearing every device",
    )

    @field_validator("world")
    @classmethod
    def _world_exists(cls, value: str) -> str:
        """A world that cannot be found fails with the settings, not later at start."""
        from mcp_ble.core.errors import ConfigError

        from .world import world_path

        try:
            path = world_path(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if path.is_dir():
            raise ValueError(f"{path} is a directory; give a world .toml file or a bundled name")
        if not path.is_file():
            raise ValueError(f"world file {path} not found; give an existing .toml file")
        return value


def _create(settings: SimulatedSettings, backends: Any) -> Any:
    from .backend import SimulatedBackend
    from .radios import shared_world
    from .world import load_world

    world = load_world(settings.world)
    shared = None
    if settings.radio is not None:
        world.radio(settings.radio)  # a radio the world does not have fails here, named
        seed = world.seed if settings.seed is None else settings.seed
        shared = shared_world(
            settings.world,
            world,
            settings.time_scale,
            min(settings.max_mtu, world.link.max_mtu),
            seed,
            settings.virtual_idle,
        )
        world = shared.world
    return SimulatedBackend(
        world,
        settings.time_scale,
        settings.max_mtu,
        seed=settings.seed,
        idle=settings.virtual_idle,
        radio=settings.radio,
        shared=shared,
    )


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    register(
        "simulated",
        _create,
        settings=SimulatedSettings,
        description="virtual devices from a world file; no radio needed",
        traits=BackendTraits(simulated=True),
    )
