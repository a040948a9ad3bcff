"""``govee``: Govee thermometers, hygrometers, meat probes, motion, door and button sensors on the
govee-ble library (Apache-2.0). Govee's company ids vary by model, so every payload is tried."""

from __future__ import annotations

from typing import Any

from . import missing_library

try:
    from govee_ble import GoveeBluetoothDeviceData

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("govee", "govee-ble") from None


class GoveePlugin(SensorStatePlugin):
    source = "govee"

    def new_parser(self, address: str) -> Any:
        return GoveeBluetoothDeviceData()
