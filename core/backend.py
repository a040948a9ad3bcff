"""The contract every BLE backend implements.

A backend is the radio: it does I/O and nothing else. Retries, caching, buffering, metrics and
policy live in the core and in plugins. All methods run on the core's event loop; a backend whose
library calls back on other threads must hand results to the loop itself
(``loop.call_soon_threadsafe``). Errors are raised as :mod:`mcp_ble.core.errors` classes so the
core and the retry plugin can classify them; a backend never retries on its own.

Backends are registered through the ``mcp_ble_register_backends`` hook (see hookspecs).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from .models import Advertisement, BackendInfo, GattService, ScanFilter
from .radio import RadioHealth

T = TypeVar("T")

NotifyCallback = Callable[[bytes], None]
"""Called on the event loop with each notification or indication payload. Must not block."""

DisconnectCallback = Callable[[str, str], None]
"""Called on the event loop as ``callback(address, reason)`` when a link drops without the core
asking (peripheral-initiated, supervision timeout, out of range)."""


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What a backend knows of a link once it is up and before the ATT MTU exchange."""

    #: Octets one link-layer data PDU carries (27 without Data Length Extension, up to 251;
    #: Core spec Vol 6, Part B, 4.5.10); None when the backend cannot tell.
    data_length: int | None
    #: The largest ATT MTU this side offers.
    max_mtu: int


MtuChooser = Callable[[str, LinkInfo], "int | None"]
"""``chooser(address, link) -> mtu``: the ATT MTU to ask for, or None for the backend's own."""


class Backend(ABC):
    """Abstract base of all backends. Addresses are the backend's own device identifiers
    (``AA:BB:CC:DD:EE:FF`` on Linux/Windows, a UUID on macOS)."""

    #: Set by the core before ``start``; backends call it for unsolicited disconnects.
    on_disconnect: DisconnectCallback = staticmethod(lambda address, reason: None)
    #: Whether this backend sends the ATT Exchange MTU Request itself (Core spec Vol 3, Part F,
    #: 3.4.2): such a backend calls ``mtu_chooser`` once the link is up and asks for what it
    #: returns. False where the OS negotiates the MTU (BlueZ, CoreBluetooth, WinRT).
    requests_mtu: bool = False
    #: Set by the core when a plugin chooses MTUs; None: the backend asks for its largest.
    mtu_chooser: MtuChooser | None = None

    def now(self) -> float:
        """Seconds on the backend's clock. Real radios use ``time.monotonic()``; a simulated
        backend returns simulated time, so scan durations and quiet periods are measured in the
        same time as the radio's own timing."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait on the backend's clock (the core waits between retries with this). A simulated
        backend waits in simulated time, so retry delays count in simulated latencies."""
        await asyncio.sleep(seconds)

    async def sleep_background(self, seconds: float) -> None:
        """Wait on the backend's clock without driving it: periodic upkeep (``app.every``) waits
        with this. On the wall clock it is :meth:`sleep`; a simulated clock that jumps to the
        next operation's wake-up lets this wait end only when time passes it anyway."""
        await self.sleep(seconds)

    @property
    def health(self) -> RadioHealth:
        """Whether the radio is ``ready``, ``lost`` or ``recovering`` (see :mod:`.radio`)."""
        health = self.__dict__.get("_health")
        if health is None:
            health = self.__dict__["_health"] = RadioHealth()
        return health

    def health_for(self, address: str) -> RadioHealth:
        """The health of the radio that carries ``address``'s link (several radios: the one
        holding it); one radio: :attr:`health`."""
        return self.health

    def connection_slots(self) -> tuple[int, int] | None:
        """(links in use, links it can hold) when the radio knows (a proxy reports its free
        slots; a controller its limit), else None. With several radios a connect goes to one
        with a free slot; links made by other clients of a shared radio count as used."""
        return None

    def radio_lost(self, reason: str) -> None:
        """Report that the radio went away (transport closed, adapter removed, D-Bus gone).
        The core ends every link and fails calls at once; :meth:`reacquire` runs with backoff
        until it succeeds. Call on the event loop."""
        self.health.lost(reason, self.reacquire, self.sleep_background)

    async def reacquire(self) -> None:
        """Take the radio again after a loss; raise while it is still absent. The default
        starts the backend again."""
        await self.start()

    def is_connected(self, address: str) -> bool:
        """Whether the link to ``address`` is up as far as the radio knows. The core asks
        before it reports a link as already connected."""
        return True

    @abstractmethod
    def info(self) -> BackendInfo:
        """Name, whether devices are simulated, and details such as the adapter in use."""

    async def start(self) -> None:  # noqa: B027 - optional hook for subclasses
        """Acquire the adapter. Raise ``BackendUnavailable`` with a fix-it message if it cannot."""

    async def stop(self) -> None:  # noqa: B027
        """Release everything: stop scans, drop links. Must not raise."""

    @abstractmethod
    def scan(self, duration_s: float, scan_filter: ScanFilter) -> AsyncIterator[Advertisement]:
        """Yield advertisements as they are heard, for ``duration_s`` seconds, then return.

        Duplicates are expected (one per advertising event); the core merges them."""

    @abstractmethod
    async def connect(self, address: str, timeout_s: float) -> None:
        """Establish a link within ``timeout_s`` or raise ``BleTimeout`` / ``ConnectionFailed`` /
        ``DeviceNotFound`` / ``OutOfSlots``. Exactly one attempt: the core owns retries."""

    @abstractmethod
    async def disconnect(self, address: str) -> None:
        """Drop the link. Disconnecting an unconnected device is not an error."""

    @abstractmethod
    async def discover(self, address: str) -> list[GattService]:
        """The GATT database: services, characteristics (value handles), descriptors."""

    @abstractmethod
    def mtu(self, address: str) -> int:
        """The negotiated ATT MTU (23..517). The write-without-response payload is ``mtu - 3``."""

    @abstractmethod
    async def read(self, address: str, handle: int) -> bytes:
        """Read a characteristic value (long reads up to 512 bytes included)."""

    @abstractmethod
    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        """Write a characteristic value, with response (long write when over MTU-3) or without."""

    @abstractmethod
    async def read_descriptor(self, address: str, handle: int) -> bytes: ...

    @abstractmethod
    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None: ...

    @abstractmethod
    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        """Enable notifications (or indications, whichever the characteristic offers)."""

    @abstractmethod
    async def stop_notify(self, address: str, handle: int) -> None: ...

    async def pair(self, address: str) -> None:
        """Pair (bond) with a connected device. Backends that cannot pair keep this default."""
        from .errors import NotPermitted

        raise NotPermitted(
            f"The {self.info().name} backend cannot pair with {address}",
            "pair from the operating system's Bluetooth settings instead",
        )


async def until_deadline(queue: asyncio.Queue[T], duration_s: float) -> AsyncIterator[T]:
    """Yield what arrives on ``queue`` for ``duration_s`` seconds of loop time, then stop: the
    shape of a scan for backends whose library calls back with advertisements."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    while (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(remaining):
                item = await queue.get()
        except TimeoutError:
            return
        yield item
