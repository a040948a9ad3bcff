"""The one habluetooth manager of the process, which bleak-esphome needs.

bleak-esphome's ``connect_scanner`` and habluetooth's scanners look the manager up with
``habluetooth.get_manager()``: there is one per process. Every esphome backend shares it (counted,
so the last one to stop tears it down); a manager someone else set up is used and left alone.

The manager is built so it needs no BlueZ: no local adapters (``bluetooth_adapters`` would ask
BlueZ over D-Bus), and bleak_retry_connector's slot manager without its D-Bus setup. Its setup
replaces ``bleak.BleakScanner``/``BleakClient`` process-wide with Home Assistant's wrappers; that is
undone at once, so other backends in the same process keep bleak's own classes.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from bluetooth_adapters import AdapterDetails, BluetoothAdapters
from habluetooth import BluetoothManager, get_manager
from habluetooth.central_manager import CentralBluetoothManager
from habluetooth.usage import uninstall_multiple_bleak_catcher


class _NoLocalAdapters(BluetoothAdapters):
    """Remote scanners only: no adapter of this machine is managed."""

    async def refresh(self) -> None:
        return None

    @property
    def adapters(self) -> dict[str, AdapterDetails]:
        return {}

    @property
    def default_adapter(self) -> str:
        return ""


class _Manager(BluetoothManager):  # type: ignore[misc]
    def _discover_service_info(self, service_info: Any) -> None:
        """Deduplicated discoveries; the backend takes every advertisement from the proxy."""


#: One lock per event loop (an asyncio.Lock belongs to the loop that first waits on it).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_owned: BluetoothManager | None = None
_users = 0


async def acquire() -> BluetoothManager:
    """The process's manager, set up on first use."""
    global _owned, _users
    async with _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        if CentralBluetoothManager.manager is None:
            manager = _Manager(_NoLocalAdapters())
            await manager.async_setup()
            uninstall_multiple_bleak_catcher()
            _owned = manager
        _users += 1
        return get_manager()


async def release() -> None:
    """One user fewer; the last one stops the manager this module made."""
    global _owned, _users
    async with _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        _users = max(0, _users - 1)
        if _users or _owned is None:
            return
        manager, _owned = _owned, None
        manager.async_stop()
        if CentralBluetoothManager.manager is manager:
            CentralBluetoothManager.manager = None
