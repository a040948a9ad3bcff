"""``bluemaestro``: BlueMaestro Tempo Disc sensors on the bluemaestro-ble library (MIT)."""

from __future__ import annotations

from typing import Any

from . import FAMILY, require
from .adapter import SensorStatePlugin

require("bluemaestro", "bluemaestro-ble", "bluemaestro_ble", *FAMILY)


class BlueMaestroPlugin(SensorStatePlugin):
    source = "bluemaestro"
    library = "bluemaestro-ble"
    module = "bluemaestro_ble"
    manufacturer_ids = frozenset({0x0133})  # Blue Maestro Limited

    def new_parser(self, address: str) -> Any:
        from bluemaestro_ble import BlueMaestroBluetoothDeviceData

        return BlueMaestroBluetoothDeviceData()
