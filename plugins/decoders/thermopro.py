"""``thermopro``: ThermoPro TP35x hygrometers and TP96x meat probes on the thermopro-ble
library (MIT). Recognised by name, with data in the company id: every payload is tried."""

from __future__ import annotations

from typing import Any

from . import missing_library

try:
    from thermopro_ble import ThermoProBluetoothDeviceData

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("thermopro", "thermopro-ble") from None


class ThermoProPlugin(SensorStatePlugin):
    source = "thermopro"

    def new_parser(self, address: str) -> Any:
        return ThermoProBluetoothDeviceData()
