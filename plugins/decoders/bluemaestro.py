"""``bluemaestro``: BlueMaestro Tempo Disc sensors on the bluemaestro-ble library (MIT)."""

from __future__ import annotations

from typing import Any

from . import missing_library

try:
    from bluemaestro_ble import BlueMaestroBluetoothDeviceData

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("bluemaestro", "bluemaestro-ble") from None


class BlueMaestroPlugin(SensorStatePlugin):
    source = "bluemaestro"
    manufacturer_ids = frozenset({0x0133})  # Blue Maestro Limited

    def new_parser(self, address: str) -> Any:
        return BlueMaestroBluetoothDeviceData()
