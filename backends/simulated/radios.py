"""Several simulated radios in one world: the devices and the clock they share, and what each
radio hears.

A world with ``[[radios]]`` places adapters on a floor plan. Every simulated backend that names
one of them (``radio`` in its settings) is one radio; the backends that name the same world file,
seed, clock and MTU limit in one process share one :class:`SharedWorld`: the same devices (a
device linked through one radio no longer advertises to the others) and the same clock (one
virtual clock per world). Each radio hears the devices within its ``range_m``, at the device's
RSSI less the log-distance path loss (:func:`path_loss_db`), with its own random draws.
"""

from __future__ import annotations

import math
import random
import weakref
from dataclasses import dataclass
from pathlib import Path

from .clock import IdleMode, ScaledClock, SimClock, VirtualClock
from .devices import SimDevice, out_of_range_from
from .world import Position, Radio, World, world_path


def path_loss_db(radio: Position, device: Position | None, exponent: float) -> float:
    """The log-distance path loss between a radio and a device, relative to 1 m: ``10 * n *
    log10(d)`` for ``d`` metres (at least 1). A device without a position loses nothing."""
    if device is None:
        return 0.0
    d = max(1.0, math.dist(radio, device))
    return 10 * exponent * math.log10(d)


def in_range(radio: Radio, device: Position | None) -> bool:
    """Whether the radio can hear a device at all (within ``range_m``; a device without a
    position is heard by every radio)."""
    return device is None or math.dist(radio.position, device) <= radio.range_m


@dataclass(slots=True)
class Heard:
    """One device as one radio hears it: its path loss, the radio's random draws for it, and
    when it leaves that radio's range (its mean RSSI there drifts below the sensitivity)."""

    device: SimDevice
    loss_db: float
    rng: random.Random
    out_of_range_from: float

    def sample(self, t: float) -> int:
        return self.device.rssi_sample(t, self.rng, self.loss_db)


@dataclass
class SharedWorld:
    """A world's devices and clock, shared by the radios placed in it."""

    world: World
    clock: SimClock
    devices: dict[str, SimDevice]
    seed: int
    #: Radios started and not stopped: the clock runs while there is one.
    running: int = 0
    #: Every radio that started has stopped: a radio made now gets a new world.
    ended: bool = False

    @classmethod
    def build(
        cls, world: World, time_scale: float, max_mtu: int, seed: int, idle: IdleMode
    ) -> SharedWorld:
        clock: SimClock = VirtualClock(idle) if time_scale == 0 else ScaledClock(time_scale)
        devices = {spec.address: SimDevice(spec, world, max_mtu, seed) for spec in world.devices}
        return cls(world, clock, devices, seed)

    def start(self) -> None:
        if self.running == 0:
            self.clock.start()
        self.running += 1

    def stop(self) -> None:
        self.running = max(0, self.running - 1)
        if self.running == 0:
            self.clock.stop()
            self.ended = True

    def hearing(self, radio: Radio, sensitivity: int) -> dict[str, Heard]:
        """The devices ``radio`` can hear, as it hears them."""
        out = {}
        exponent = self.world.path_loss_exponent
        for address, device in self.devices.items():
            position = device.spec.position
            if not in_range(radio, position):
                continue
            loss = path_loss_db(radio.position, position, exponent)
            rng = random.Random(f"{self.seed}:{radio.name}:{address}")
            leaves = out_of_range_from(device.spec, sensitivity, loss)
            out[address] = Heard(device, loss, rng, leaves)
        return out


#: Worlds shared by the radios of this process, by (file, seed, time scale, idle mode, MTU).
_SHARED: weakref.WeakValueDictionary[tuple[object, ...], SharedWorld] = (
    weakref.WeakValueDictionary()
)


def shared_world(
    name_or_path: str, world: World, time_scale: float, max_mtu: int, seed: int, idle: IdleMode
) -> SharedWorld:
    """The world the radios naming this file, seed and clock share (made on first use; it goes
    when no radio holds it any more)."""
    key = (str(Path(world_path(name_or_path)).resolve()), seed, time_scale, idle, max_mtu)
    shared = _SHARED.get(key)
    if shared is None or shared.ended:
        shared = SharedWorld.build(world, time_scale, max_mtu, seed, idle)
        _SHARED[key] = shared
    return shared
