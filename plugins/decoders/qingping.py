"""``qingping``: Qingping (ClearGrass) thermometers, air monitors, motion and door sensors on the
qingping-ble library (MIT)."""

from __future__ import annotations

from typing import Any

from . import missing_library

try:
    from qingping_ble import QingpingBluetoothDeviceData
    from qingping_ble.const import ExtendedSensorDeviceClass

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("qingping", "qingping-ble") from None


class QingpingPlugin(SensorStatePlugin):
    source = "qingping"
    device_classes = (ExtendedSensorDeviceClass,)
    service_uuids = frozenset({"0000fdcd-0000-1000-8000-00805f9b34fb"})

    def new_parser(self, address: str) -> Any:
        return QingpingBluetoothDeviceData()
