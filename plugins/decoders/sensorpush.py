"""``sensorpush``: SensorPush HT1, HT.w and HTP.xw on the sensorpush-ble library (MIT). The format
is recognised by name and the company id carries data, so every payload is tried."""

from __future__ import annotations

from typing import Any

from . import FAMILY, require
from .adapter import SensorStatePlugin

require("sensorpush", "sensorpush-ble", "sensorpush_ble", *FAMILY)


class SensorPushPlugin(SensorStatePlugin):
    source = "sensorpush"
    library = "sensorpush-ble"
    module = "sensorpush_ble"

    def new_parser(self, address: str) -> Any:
        from sensorpush_ble import SensorPushBluetoothDeviceData

        return SensorPushBluetoothDeviceData()
