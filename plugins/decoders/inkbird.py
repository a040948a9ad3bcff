"""``inkbird``: INKBIRD IBS-TH, IBS-TH2, ITH, IBBQ and IBT thermometers on the inkbird-ble
library (MIT). The IBS-TH family puts a reading where the company id belongs, so every
payload is tried."""

from __future__ import annotations

from typing import Any

from . import FAMILY, require
from .adapter import SensorStatePlugin

require("inkbird", "inkbird-ble", "inkbird_ble", *FAMILY)


class InkbirdPlugin(SensorStatePlugin):
    source = "inkbird"
    library = "inkbird-ble"
    module = "inkbird_ble"

    def new_parser(self, address: str) -> Any:
        from inkbird_ble import INKBIRDBluetoothDeviceData

        return INKBIRDBluetoothDeviceData()
