"""bleak-esphome's client, keeping the reason the proxy gives when a link goes down.

The proxy reports a link's end with BluetoothDeviceConnectionResponse(connected=false, error=...),
``error`` being ESP-IDF's ``esp_gatt_conn_reason_t``, whose values are the HCI error codes of the
disconnection (Core spec Vol 1, Part F: 0x08 supervision timeout, 0x13 remote user terminated,
0x16 terminated by the local host, 0x3E failed to be established). bleak-esphome reads it in
``_on_bluetooth_connection_state`` and tells its disconnect callback nothing; this subclass
keeps it (bleak-esphome is pinned below 5 for this hook).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aioesphomeapi import ESP_CONNECTION_ERROR_DESCRIPTION
from bleak_esphome.backend.client import ESPHomeClient


class ReasonClient(ESPHomeClient):
    #: The proxy's reason code of the last link-down report, None before one.
    down_reason: int | None = None

    def _on_bluetooth_connection_state(
        self, connected_future: asyncio.Future[bool], connected: bool, mtu: int, error: int
    ) -> None:
        if not connected:
            self.down_reason = error
        super()._on_bluetooth_connection_state(connected_future, connected, mtu, error)


def describe(code: Any) -> str:
    """``connection terminated by peer user (0x13)`` for a reason code."""
    if code is None:
        return "no reason given"
    text = ESP_CONNECTION_ERROR_DESCRIPTION.get(code)
    return f"{text.lower()} (0x{int(code):02X})" if text else f"reason 0x{int(code):02X}"
