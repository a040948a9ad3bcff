"""Backends under test, for the contract suite.

Each entry of ``BACKENDS`` is an async context manager factory: given a world file path it yields
a :class:`BackendUnderTest` whose ``backend`` is started and whose ``drop_link(address)`` makes the
*peripheral* end a connection. Real backends (bleak, simplepyble, bumble) join this table with
bumble test-bed peripherals serving the same world.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_ble.backends.simulated.backend import SimulatedBackend
from mcp_ble.backends.simulated.world import World, load_world
from mcp_ble.core.backend import Backend

WORLDS = Path(__file__).parent / "worlds"
CONTRACT_WORLD = WORLDS / "contract.toml"


@dataclass
class BackendUnderTest:
    name: str
    backend: Backend
    world: World
    drop_link: Callable[[str], Any]


@contextlib.asynccontextmanager
async def simulated(world_path: Path) -> AsyncIterator[BackendUnderTest]:
    world = load_world(str(world_path))
    backend = SimulatedBackend(world, time_scale=0.01)
    await backend.start()
    try:
        yield BackendUnderTest("simulated", backend, world, backend.drop_link)
    finally:
        await backend.stop()


@contextlib.asynccontextmanager
async def bumble(world_path: Path) -> AsyncIterator[BackendUnderTest]:
    """The production bumble backend with its controller on the test bed's LocalLink."""
    from bumble.link import LocalLink

    from mcp_ble.backends.bumble.backend import BumbleBackend

    from tests.testbed.link import opener
    from tests.testbed.peripherals import VirtualWorld

    world = load_world(str(world_path))
    link = LocalLink()
    virtual = await VirtualWorld(world, link).start()
    backend = BumbleBackend("link:test-bed", open_transport=opener(link))
    await backend.start()
    try:
        yield BackendUnderTest("bumble", backend, world, virtual.drop_link)
    finally:
        await backend.stop()
        await virtual.stop()


@contextlib.asynccontextmanager
async def bleak(world_path: Path) -> AsyncIterator[BackendUnderTest]:
    """The production bleak backend, unchanged, on test-only bleak backend classes that drive a
    bumble central on the test bed's LocalLink (bleak's ``backend=`` argument)."""
    from bumble.link import LocalLink

    from mcp_ble.backends.bleak.backend import BleakBackend

    from tests.testbed.bleak_backend import BumbleCentral, bleak_backends
    from tests.testbed.peripherals import VirtualWorld

    world = load_world(str(world_path))
    link = LocalLink()
    virtual = await VirtualWorld(world, link).start()
    central = await BumbleCentral(link).start()
    scanner_cls, client_cls = bleak_backends(central)
    backend = BleakBackend(scanner_backend=scanner_cls, client_backend=client_cls)
    await backend.start()
    try:
        yield BackendUnderTest("bleak", backend, world, virtual.drop_link)
    finally:
        await backend.stop()
        await central.stop()
        await virtual.stop()


@contextlib.asynccontextmanager
async def simplepyble(world_path: Path) -> AsyncIterator[BackendUnderTest]:
    """The production simplepyble backend on an injected fake simplepyble module whose blocking
    API runs a bumble central (and the world's peripherals) in a background thread."""
    from mcp_ble.backends.simplepyble.backend import SimplepybleBackend

    from tests.testbed.fake_simplepyble import FakeSimplepyble

    world = load_world(str(world_path))
    fake = await asyncio.to_thread(FakeSimplepyble(world).start)
    backend = SimplepybleBackend(fake)
    await backend.start()
    try:
        yield BackendUnderTest("simplepyble", backend, world, fake.drop_link)
    finally:
        await backend.stop()
        await asyncio.to_thread(fake.stop)


@contextlib.asynccontextmanager
async def esphome(world_path: Path) -> AsyncIterator[BackendUnderTest]:
    """The production esphome backend (aioesphomeapi and bleak-esphome, unchanged) talking the
    native API over 127.0.0.1 to a fake ESPHome Bluetooth proxy whose bumble central reaches the
    world's peripherals on a LocalLink; Noise-encrypted, as proxies are configured."""
    from mcp_ble.backends.esphome.backend import EsphomeBackend

    from tests.testbed.esphome_proxy import ProxiedWorld

    world = load_world(str(world_path))
    key = "LaOYPM8T6tYNmAHuGBZtTe/RRrjuFgOQ8HZrRVk1n3w="  # a test key, 32 bytes in base64
    proxied = await ProxiedWorld.start(world, psk=key)
    backend = EsphomeBackend("127.0.0.1", proxied.proxy.port, noise_psk=key)
    await backend.start()
    try:
        yield BackendUnderTest("esphome", backend, world, proxied.virtual.drop_link)
    finally:
        # The class's stop, even where a test replaced the instance's (the chunking test does):
        # stopped first, the backend does not take the proxy's end for a lost radio.
        await EsphomeBackend.stop(backend)
        await proxied.stop()


BACKENDS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[BackendUnderTest]]] = {
    "simulated": simulated,
    "bumble": bumble,
    "bleak": bleak,
    "simplepyble": simplepyble,
    "esphome": esphome,
}
