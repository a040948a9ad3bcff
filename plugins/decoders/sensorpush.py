"""``sensorpush``: SensorPush HT1, HT.w and HTP.xw on the sensorpush-ble library (MIT). The format
is recognised by name and the company id carries data, so every payload is tried."""

from __future__ import annotations

from typing import Any

from . import missing_library

try:
    from sensorpush_ble import SensorPushBluetoothDeviceData

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("sensorpush", "sensorpush-ble") from None


class SensorPushPlugin(SensorStatePlugin):
    source = "sensorpush"

    def new_parser(self, address: str) -> Any:
        return SensorPushBluetoothDeviceData()
