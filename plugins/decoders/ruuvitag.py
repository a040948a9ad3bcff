"""``ruuvitag``: RuuviTag (data formats 3, 5, 6, E1) and Ruuvi Air on the ruuvitag-ble
library (MIT)."""

from __future__ import annotations

from typing import Any

from . import FAMILY, require
from .adapter import SensorStatePlugin

require("ruuvitag", "ruuvitag-ble", "ruuvitag_ble", *FAMILY)


class RuuvitagPlugin(SensorStatePlugin):
    source = "ruuvitag"
    library = "ruuvitag-ble"
    module = "ruuvitag_ble"
    manufacturer_ids = frozenset({0x0499})  # Ruuvi Innovations

    def new_parser(self, address: str) -> Any:
        from ruuvitag_ble import RuuvitagBluetoothDeviceData

        return RuuvitagBluetoothDeviceData()
