"""``bthome``: BTHome v1 and v2 (Shelly BLU, ATC and pvvx firmware, many DIY sensors) on the
bthome-ble library (MIT). Encrypted devices need their key in ``[bthome] keys``."""

from __future__ import annotations

from typing import Any, ClassVar

from . import FAMILY, require
from .adapter import SensorStatePlugin
from .keys import DeviceKeys

require("bthome", "bthome-ble", "bthome_ble", *FAMILY)


class BTHomeKeys(DeviceKeys):
    """``[bthome]``: the 16-byte AES-CCM key of each encrypted BTHome device."""

    key_name: ClassVar[str] = "BTHome key"


class BTHomePlugin(SensorStatePlugin):
    source = "bthome"
    library = "bthome-ble"
    module = "bthome_ble"
    # BTHome v2, v1 unencrypted, v1 encrypted (bthome.io/format)
    service_uuids = frozenset(
        {
            "0000fcd2-0000-1000-8000-00805f9b34fb",
            "0000181c-0000-1000-8000-00805f9b34fb",
            "0000181e-0000-1000-8000-00805f9b34fb",
        }
    )
    device_classes = ("ExtendedSensorDeviceClass",)
    settings_model = BTHomeKeys
    settings: BTHomeKeys

    def new_parser(self, address: str) -> Any:
        from bthome_ble import BTHomeBluetoothDeviceData

        return BTHomeBluetoothDeviceData(bindkey=self.settings.key_for(address))
