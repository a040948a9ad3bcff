"""An HCI transport whose controller lives on an in-memory LocalLink.

It has what ``bumble.transport.open_transport`` returns (``source``, ``sink``, ``close``), so the
production bumble backend opens it exactly like a USB dongle.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink


class DleController(Controller):
    """bumble's controller plus Data Length Extension: LE Set Data Length (Core spec Vol 4,
    Part E, 7.8.33) is accepted and answered with an LE Data Length Change event (7.7.65.7) for
    the octets asked, at most 251, as a DLE-capable controller does once the peer agrees."""

    def on_hci_le_set_data_length_command(
        self, command: hci.HCI_LE_Set_Data_Length_Command
    ) -> hci.HCI_StatusAndConnectionHandleReturnParameters:
        octets = min(command.tx_octets, 251)
        event = hci.HCI_LE_Data_Length_Change_Event(
            connection_handle=command.connection_handle,
            max_tx_octets=octets,
            max_tx_time=command.tx_time,
            max_rx_octets=octets,
            max_rx_time=command.tx_time,
        )
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusAndConnectionHandleReturnParameters(
            status=hci.HCI_SUCCESS, connection_handle=command.connection_handle
        )


class LinkTransport:
    """One controller on ``link``; bumble's host talks HCI to it through ``source``/``sink``.
    ``dle``: the controller supports Data Length Extension."""

    def __init__(self, link: LocalLink, name: str = "central", dle: bool = False) -> None:
        self.link = link
        self.controller = (DleController if dle else Controller)(name, link=link)
        self.source: Any = self.controller
        self.sink: Any = AsyncPipeSink(self.controller)

    async def close(self) -> None:
        if self.controller in self.link.controllers:
            self.link.remove_controller(self.controller)


def opener(link: LocalLink, dle: bool = False):
    """An ``open_transport`` replacement that puts the backend's controller on ``link``."""

    async def open_transport(name: str) -> LinkTransport:
        return LinkTransport(link, name, dle)

    return open_transport
