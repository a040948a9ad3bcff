"""``thermopro``: ThermoPro TP35x hygrometers and TP96x meat probes on the thermopro-ble
library (MIT). Recognised by name, with data in the company id: every payload is tried."""

from __future__ import annotations

from typing import Any

from . import FAMILY, require
from .adapter import SensorStatePlugin

require("thermopro", "thermopro-ble", "thermopro_ble", *FAMILY)


class ThermoProPlugin(SensorStatePlugin):
    source = "thermopro"
    library = "thermopro-ble"
    module = "thermopro_ble"

    def new_parser(self, address: str) -> Any:
        from thermopro_ble import ThermoProBluetoothDeviceData

        return ThermoProBluetoothDeviceData()
