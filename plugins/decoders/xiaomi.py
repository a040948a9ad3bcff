"""``xiaomi``: Xiaomi MiBeacon (v2-v5) and the Xiaomi scales and plant sensors on the xiaomi-ble
library (Apache-2.0). Encrypted devices need their bindkey in ``[xiaomi] keys``."""

from __future__ import annotations

from typing import Any, ClassVar

from . import FAMILY, require
from .adapter import SensorStatePlugin
from .keys import DeviceKeys

require("xiaomi", "xiaomi-ble", "xiaomi_ble", *FAMILY)


class XiaomiKeys(DeviceKeys):
    """``[xiaomi]``: each encrypted device's bindkey (24 hex digits for MiBeacon v2/v3, 32 for
    v4/v5)."""

    key_lengths: ClassVar[tuple[int, ...]] = (24, 32)
    key_name: ClassVar[str] = "Xiaomi bindkey"


class XiaomiPlugin(SensorStatePlugin):
    source = "xiaomi"
    library = "xiaomi-ble"
    module = "xiaomi_ble"
    # xiaomi_ble.const: SERVICE_MIBEACON, SERVICE_HHCCJCY10, SERVICE_SCALE1, SERVICE_SCALE2
    service_uuids = frozenset(
        {
            "0000fe95-0000-1000-8000-00805f9b34fb",
            "0000fd50-0000-1000-8000-00805f9b34fb",
            "0000181d-0000-1000-8000-00805f9b34fb",
            "0000181b-0000-1000-8000-00805f9b34fb",
        }
    )
    device_classes = ("ExtendedSensorDeviceClass", "ExtendedBinarySensorDeviceClass")
    settings_model = XiaomiKeys
    settings: XiaomiKeys

    def new_parser(self, address: str) -> Any:
        from xiaomi_ble import XiaomiBluetoothDeviceData

        return XiaomiBluetoothDeviceData(bindkey=self.settings.key_for(address))
