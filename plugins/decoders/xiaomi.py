"""``xiaomi``: Xiaomi MiBeacon (v2-v5) and the Xiaomi scales and plant sensors on the xiaomi-ble
library (Apache-2.0). Encrypted devices need their bindkey in ``[xiaomi] keys``."""

from __future__ import annotations

from typing import Any, ClassVar

from . import missing_library

try:
    from xiaomi_ble import XiaomiBluetoothDeviceData
    from xiaomi_ble.const import (
        SERVICE_HHCCJCY10,
        SERVICE_MIBEACON,
        SERVICE_SCALE1,
        SERVICE_SCALE2,
        ExtendedBinarySensorDeviceClass,
        ExtendedSensorDeviceClass,
    )

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("xiaomi", "xiaomi-ble") from None

from .keys import DeviceKeys


class XiaomiKeys(DeviceKeys):
    """``[xiaomi]``: each encrypted device's bindkey (24 hex digits for MiBeacon v2/v3, 32 for
    v4/v5)."""

    key_lengths: ClassVar[tuple[int, ...]] = (24, 32)
    key_name: ClassVar[str] = "Xiaomi bindkey"


class XiaomiPlugin(SensorStatePlugin):
    source = "xiaomi"
    service_uuids = frozenset({SERVICE_MIBEACON, SERVICE_HHCCJCY10, SERVICE_SCALE1, SERVICE_SCALE2})
    device_classes = (ExtendedSensorDeviceClass, ExtendedBinarySensorDeviceClass)
    settings_model = XiaomiKeys
    settings: XiaomiKeys

    def new_parser(self, address: str) -> Any:
        return XiaomiBluetoothDeviceData(bindkey=self.settings.key_for(address))
