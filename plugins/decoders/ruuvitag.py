"""``ruuvitag``: RuuviTag (data formats 3, 5, 6, E1) and Ruuvi Air on the ruuvitag-ble
library (MIT)."""

from __future__ import annotations

from typing import Any

from . import missing_library

try:
    from ruuvitag_ble import RuuvitagBluetoothDeviceData

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("ruuvitag", "ruuvitag-ble") from None


class RuuvitagPlugin(SensorStatePlugin):
    source = "ruuvitag"
    manufacturer_ids = frozenset({0x0499})  # Ruuvi Innovations

    def new_parser(self, address: str) -> Any:
        return RuuvitagBluetoothDeviceData()
