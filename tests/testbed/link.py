"""An HCI transport whose controller lives on an in-memory LocalLink.

It has what ``bumble.transport.open_transport`` returns (``source``, ``sink``, ``close``), so the
production bumble backend opens it exactly like a USB dongle.
"""

from __future__ import annotations

from typing import Any

from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink


class LinkTransport:
    """One controller on ``link``; bumble's host talks HCI to it through ``source``/``sink``."""

    def __init__(self, link: LocalLink, name: str = "central") -> None:
        self.link = link
        self.controller = Controller(name, link=link)
        self.source: Any = self.controller
        self.sink: Any = AsyncPipeSink(self.controller)

    async def close(self) -> None:
        if self.controller in self.link.controllers:
            self.link.remove_controller(self.controller)


def opener(link: LocalLink):
    """An ``open_transport`` replacement that puts the backend's controller on ``link``."""

    async def open_transport(name: str) -> LinkTransport:
        return LinkTransport(link, name)

    return open_transport
