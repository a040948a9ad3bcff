"""``ibeacon``: Apple iBeacon frames on the ibeacon-ble library (MIT).

Readings: ``uuid`` (the proximity UUID), ``major``, ``minor`` and ``tx_power`` (the calibrated
power at 1 m, dBm). The distance the library estimates follows the RSSI of each report, so it is
left out like the RSSI itself; so are its Cypress temperature and humidity, which it computes
from major and minor for any beacon.
"""

from __future__ import annotations

from typing import Any

from ...core.hookspecs import hookimpl
from ...core.models import Advertisement, SensorReading
from . import FAMILY, require
from .adapter import import_library, service_info

require("ibeacon", "ibeacon-ble", "ibeacon_ble", *FAMILY)

APPLE = 0x004C


class IBeaconPlugin:
    #: The measurement names of its readings.
    measurements = frozenset({"uuid", "major", "minor", "tx_power"})

    def __init__(self) -> None:
        self._parser: Any = None  # made when an app enabling the plugin starts

    def parser(self) -> Any:
        if self._parser is None:
            from ibeacon_ble import iBeaconParser

            self._parser = iBeaconParser()
        return self._parser

    @hookimpl
    async def mcp_ble_startup(self, app: Any) -> None:
        import_library("ibeacon", "ibeacon-ble", "ibeacon_ble")
        # The parser looks up each beacon's vendor by address in a table it loads once.
        await self.parser().async_setup()

    @hookimpl
    def mcp_ble_decode_advertisement(
        self, advertisement: Advertisement
    ) -> list[SensorReading] | None:
        if APPLE not in advertisement.manufacturer_data:
            return None
        try:
            beacon = self.parser().parse(service_info(advertisement))
        except Exception:  # malformed: not a beacon
            return None
        if beacon is None:
            return None
        return [
            SensorReading("uuid", str(beacon.uuid), None, "ibeacon", "uuid", APPLE),
            SensorReading("major", beacon.major, None, "ibeacon", "major", APPLE),
            SensorReading("minor", beacon.minor, None, "ibeacon", "minor", APPLE),
            SensorReading("tx_power", beacon.power, "dBm", "ibeacon", "tx_power", APPLE),
        ]
