"""``qingping``: Qingping (ClearGrass) thermometers, air monitors, motion and door sensors on the
qingping-ble library (MIT)."""

from __future__ import annotations

from typing import Any

from . import FAMILY, require
from .adapter import SensorStatePlugin

require("qingping", "qingping-ble", "qingping_ble", *FAMILY)


class QingpingPlugin(SensorStatePlugin):
    source = "qingping"
    library = "qingping-ble"
    module = "qingping_ble"
    device_classes = ("ExtendedSensorDeviceClass",)
    service_uuids = frozenset({"0000fdcd-0000-1000-8000-00805f9b34fb"})

    def new_parser(self, address: str) -> Any:
        from qingping_ble import QingpingBluetoothDeviceData

        return QingpingBluetoothDeviceData()
