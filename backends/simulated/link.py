"""One simulated connection: connection events, packet placement, loss and buffers.

A link has an anchor every connection interval. Each direction (central to peripheral, and back)
has a cursor saying where its next packet goes: into the first connection event that starts at or
after the packet is ready, behind the packets already queued, at most ``packets_per_event`` per
event and only as many exchanges as fit the interval. A packet's delivery time is the end of its
exchange. A lost packet (``loss_rate``) is sent again in the next exchange. Everything is computed
ahead: an operation learns when its last packet arrives and sleeps until then.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from dataclasses import dataclass

from . import theory
from .clock import Timer

EPS = 1e-9


@dataclass
class LinkStats:
    """What the radio did, for ``SimulatedBackend.stats`` and the benchmark."""

    packets: int = 0
    retransmissions: int = 0
    notifications_delivered: int = 0
    notifications_dropped: int = 0
    #: Of the dropped: due while the host ran behind simulated time (never generated).
    notifications_shed: int = 0


class Cursor:
    """Where the next packet of one direction goes."""

    __slots__ = ("event", "link", "used", "used_s")

    def __init__(self, link: Link) -> None:
        self.link = link
        self.event = -1
        self.used = 0
        self.used_s = 0.0

    def place(self, ready: float, ll_payload: int) -> float:
        """Put one packet on the air no earlier than ``ready``; return when its exchange ends."""
        link = self.link
        event = link.event_at_or_after(ready)
        if self.event >= event:
            event = self.event
        else:
            self.event, self.used, self.used_s = event, 0, 0.0
        pair = link.exchange(ll_payload)
        if pair > link.interval:  # a Coded-PHY packet longer than the interval spans events
            if self.used:
                event += 1
            self.event, self.used, self.used_s = event + math.ceil(pair / link.interval - EPS), 0, 0
            return link.anchor(event) + pair
        if self.used >= link.packets_per_event or self.used_s + pair > link.interval + EPS:
            event += 1
            self.event, self.used, self.used_s = event, 0, 0.0
        self.used += 1
        self.used_s += pair
        return link.anchor(event) + self.used_s

    def send(self, ready: float, att_len: int, done: list[float] | None = None) -> float:
        """Send one ATT PDU (fragmented, with retransmissions); return when its last packet
        arrives. ``done`` collects each fragment's delivery time (for buffer accounting)."""
        link = self.link
        stats = link.stats
        end = ready
        for size in theory.fragments(att_len, link.data_length):
            while True:
                end = self.place(ready, size)
                stats.packets += 1
                if not link.loss_rate or link.rng.random() >= link.loss_rate:
                    break
                stats.retransmissions += 1
            if done is not None:
                done.append(end)
        return end


class Link:
    """The live state of one connection."""

    def __init__(
        self,
        address: str,
        t0: float,
        params: theory.LinkParams,
        supervision_s: float,
        rng: random.Random,
        stats: LinkStats,
    ) -> None:
        self.address = address
        self.t0 = t0
        self.params = params
        self.interval = params.interval_s
        self.packets_per_event = params.packets_per_event
        self.data_length = params.data_length
        self.loss_rate = params.loss_rate
        self.phy = params.phy
        self.mtu = params.mtu
        self.tx_buffers = params.tx_buffers
        self.supervision_s = supervision_s
        self.rng = rng
        self.stats = stats
        self.central = Cursor(self)
        self.peripheral = Cursor(self)
        self.att = asyncio.Lock()
        #: Delivery times of write-without-response packets still in the controller's buffers.
        self.in_flight: deque[float] = deque()
        #: Delivery times of notifications queued at the peripheral.
        self.notify_queue: deque[float] = deque()
        #: (arrival time, handle, value) of notifications on the air, in arrival order.
        self.deliveries: deque[tuple[float, int, bytes]] = deque()
        self.delivery_timer: Timer | None = None
        self.indication_free_at = 0.0
        self.lost_at = math.inf
        self.lost_reason = ""
        self.timers: list[Timer] = []
        self.ops = 0
        self._exchange: dict[int, float] = {}

    def anchor(self, event: int) -> float:
        return self.t0 + event * self.interval

    def event_at_or_after(self, t: float) -> int:
        """The first connection event that starts at or after ``t``."""
        return max(0, math.ceil((t - self.t0) / self.interval - EPS))

    def event_of(self, t: float) -> int:
        """The connection event during which ``t`` falls (an exchange ending exactly at the next
        anchor still belongs to its own event)."""
        return max(0, math.floor((t - self.t0) / self.interval - EPS))

    def next_event_after(self, t: float) -> float:
        """The anchor of the event after the one ``t`` falls in: when the other side can answer."""
        return self.anchor(self.event_of(t) + 1)

    def exchange(self, ll_payload: int) -> float:
        pair = self._exchange.get(ll_payload)
        if pair is None:
            pair = self._exchange[ll_payload] = theory.exchange_s(ll_payload, self.phy)
        return pair

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        if self.delivery_timer is not None:
            self.delivery_timer.cancel()
            self.delivery_timer = None
        self.deliveries.clear()
