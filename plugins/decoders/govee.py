"""``govee``: Govee thermometers, hygrometers, meat probes, motion, door and button sensors on the
govee-ble library (Apache-2.0). Govee's company ids vary by model, so every payload is tried."""

from __future__ import annotations

from typing import Any

from . import FAMILY, require
from .adapter import SensorStatePlugin

require("govee", "govee-ble", "govee_ble", *FAMILY)


class GoveePlugin(SensorStatePlugin):
    source = "govee"
    library = "govee-ble"
    module = "govee_ble"

    def new_parser(self, address: str) -> Any:
        from govee_ble import GoveeBluetoothDeviceData

        return GoveeBluetoothDeviceData()
