"""``inkbird``: INKBIRD IBS-TH, IBS-TH2, ITH, IBBQ and IBT thermometers on the inkbird-ble
library (MIT). The IBS-TH family puts a reading where the company id belongs, so every
payload is tried."""

from __future__ import annotations

from typing import Any

from . import missing_library

try:
    from inkbird_ble import INKBIRDBluetoothDeviceData

    from .adapter import SensorStatePlugin
except ImportError:
    raise missing_library("inkbird", "inkbird-ble") from None


class InkbirdPlugin(SensorStatePlugin):
    source = "inkbird"

    def new_parser(self, address: str) -> Any:
        return INKBIRDBluetoothDeviceData()
