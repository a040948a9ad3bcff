"""Ideal BLE figures from link parameters: what a perfect stack on a perfect radio achieves.

Closed-form (or, for discovery, exactly computed) expectations of the physics in the Core spec (Vol
6, Part B: Link Layer; Vol 3, Part F: ATT): air time of link-layer packets on each PHY, how many fit
one connection event, the throughput of write without response and notifications, the period of
request/response operations (write with response, reads, long reads and long writes), the expected
time to discover an advertiser and the ideal connection time. The benchmark prints every measured
figure beside these; the simulator's tests check that it lands on them.

All durations are seconds of link time (on the simulated backend: simulated time). The model:

- A connection event starts at every anchor (``interval`` apart). In one event a side sends at most
  ``packets_per_event`` packets, and only as many as fit the interval: each packet is an exchange
  (the packet, T_IFS, the other side's empty acknowledgement, T_IFS). An exchange longer than the
  interval (long packets on the Coded PHY) occupies several events.
- An ATT PDU travels in an L2CAP frame (4 header bytes), fragmented into LL packets of at most
  ``data_length`` bytes.
- Write without response and notifications stream: the next packet takes the next free exchange.
- A request goes out in one event; the response comes in the next event at the earliest; the next
  request goes out in the event after the response. Write with response therefore costs two
  connection intervals for a value that fits one packet.
- A lost packet is retransmitted in the next exchange (``loss_rate`` per packet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

T_IFS_S = 150e-6
"""Inter frame space between two packets of an exchange."""

ADV_DELAY_MAX_S = 0.010
"""Every advertising event is delayed by a random 0-10 ms (advDelay)."""

ADV_PDU_S = 376e-6
"""Air time of a legacy ADV_IND with 31 bytes of advertising data on the 1M PHY."""

CONNECT_IND_S = 352e-6
"""Air time of the CONNECT_IND that answers a connectable advertisement (1M PHY)."""

TRANSMIT_WINDOW_DELAY_S = 1.25e-3
TRANSMIT_WINDOW_S = 1.25e-3
"""The first connection event falls in a 1.25 ms window that opens 1.25 ms after CONNECT_IND."""

L2CAP_HEADER = 4
ATT_TRANSACTION_TIMEOUT_S = 30.0
MAX_ATTRIBUTE_LEN = 512

PHYS = ("1M", "2M", "coded_s2", "coded_s8")


def phy_name(phy: str) -> str:
    """Canonical PHY name; ``coded`` means ``coded_s8`` (the long-range default)."""
    name = {"coded": "coded_s8", "le1m": "1M", "le2m": "2M"}.get(phy.lower(), phy)
    if name not in PHYS:
        raise ValueError(f"unknown PHY '{phy}'; use one of 1M, 2M, coded, coded_s2, coded_s8")
    return name


def packet_airtime_s(ll_payload: int, phy: str) -> float:
    """Air time of one LL data packet carrying ``ll_payload`` bytes (0 for an empty ack).

    1M: preamble 1 + access address 4 + header 2 + payload + CRC 3 bytes at 1 µs per bit;
    2M: a 2-byte preamble at 0.5 µs per bit; Coded: 80 µs preamble, 256 µs access address, 16 µs
    CI, 24 µs TERM1, then header + payload + CRC and TERM2 at S = 2 or 8 µs per bit."""
    phy = phy_name(phy)
    if phy == "1M":
        return (1 + 4 + 2 + ll_payload + 3) * 8e-6
    if phy == "2M":
        return (2 + 4 + 2 + ll_payload + 3) * 4e-6
    s = 2 if phy == "coded_s2" else 8
    return (80 + 256 + 16 + 24) * 1e-6 + ((2 + ll_payload + 3) * 8 + 3) * s * 1e-6


def exchange_s(ll_payload: int, phy: str) -> float:
    """One packet, T_IFS, the empty acknowledgement, T_IFS."""
    return packet_airtime_s(ll_payload, phy) + T_IFS_S + packet_airtime_s(0, phy) + T_IFS_S


def fragments(att_len: int, data_length: int) -> list[int]:
    """LL payload sizes that carry one ATT PDU of ``att_len`` bytes (plus its L2CAP header)."""
    total = att_len + L2CAP_HEADER
    full, rest = divmod(total, data_length)
    return [data_length] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class LinkParams:
    """The parameters of one connection. ``mtu`` is the negotiated ATT MTU."""

    interval_s: float = 0.030
    phy: str = "1M"
    mtu: int = 23
    data_length: int = 27
    packets_per_event: int = 4
    loss_rate: float = 0.0
    tx_buffers: int = 16

    @property
    def payload(self) -> int:
        """Bytes of one notification or write without response: MTU - 3, and never more than
        the 512 bytes an attribute value holds (MTU 517 carries 512, not 514)."""
        return min(self.mtu - 3, 512)


def slots_per_event(link: LinkParams, ll_payload: int) -> tuple[int, int]:
    """(packets per connection event, events per packet) for packets of ``ll_payload`` bytes.

    Normally ``(n, 1)`` with ``n`` = packets_per_event, fewer if their exchanges do not fit the
    interval; a single exchange longer than the interval gives ``(1, k)``: it spans k events."""
    pair = exchange_s(ll_payload, link.phy)
    fit = int(link.interval_s / pair + 1e-9)
    if fit == 0:
        return 1, math.ceil(pair / link.interval_s - 1e-9)
    return min(link.packets_per_event, fit), 1


def _pdu_rate_per_event(link: LinkParams, att_len: int) -> float:
    """ATT PDUs per connection event when streaming PDUs of ``att_len`` bytes, lossless."""
    frags = fragments(att_len, link.data_length)
    per_event, events = slots_per_event(link, max(frags))
    per_event = min(per_event, link.tx_buffers)
    return per_event / events / len(frags)


def stream_throughput(link: LinkParams, payload: int | None = None) -> float:
    """Bytes per second of write without response or notifications, ``payload`` bytes each
    (default MTU - 3): packets_per_event x payload / interval while one PDU fits one packet."""
    size = link.payload if payload is None else payload
    per_event = _pdu_rate_per_event(link, size + 3)
    return size * per_event * (1 - link.loss_rate) / link.interval_s


def stream_time(link: LinkParams, nbytes: int, payload: int | None = None) -> float:
    """Seconds to stream ``nbytes`` as writes without response (or notifications)."""
    return nbytes / stream_throughput(link, payload)


def _events(link: LinkParams, att_len: int) -> int:
    """Connection events one ATT PDU occupies when it goes out alone."""
    frags = fragments(att_len, link.data_length)
    per_event, events = slots_per_event(link, max(frags))
    return math.ceil(len(frags) / per_event) * events


def transaction_events(link: LinkParams, request_len: int, response_len: int) -> int:
    """Connection intervals between two back-to-back requests: the request's events, then the
    response's events (from the next event on)."""
    return _events(link, request_len) + _events(link, response_len)


def write_with_response_events(link: LinkParams, nbytes: int) -> int:
    """Intervals one write with response takes, back to back. Up to MTU - 3 bytes: one Write
    Request and its response. Longer (up to 512): Prepare Write requests of MTU - 5 bytes each,
    answered by an echo of the same size, then Execute Write."""
    if nbytes <= link.mtu - 3:
        return transaction_events(link, 3 + nbytes, 1)
    chunk = link.mtu - 5
    total = 0
    for offset in range(0, nbytes, chunk):
        part = min(chunk, nbytes - offset)
        total += transaction_events(link, 5 + part, 5 + part)
    return total + transaction_events(link, 2, 1)


def write_with_response_time(link: LinkParams, nbytes: int) -> float:
    """Seconds per write with response of ``nbytes``, back to back (steady state)."""
    return write_with_response_events(link, nbytes) * link.interval_s


def write_with_response_throughput(link: LinkParams, nbytes: int | None = None) -> float:
    """Bytes per second of back-to-back writes with response (default: MTU - 3 bytes each)."""
    size = link.payload if nbytes is None else nbytes
    return size / write_with_response_time(link, size)


def read_rounds(link: LinkParams, nbytes: int) -> list[int]:
    """Bytes in each response of a (long) read: Read, then Read Blob while a response was full
    (MTU - 1 bytes), as BlueZ and most stacks do; a last empty response ends an exact multiple."""
    full = link.mtu - 1
    rounds = [min(nbytes, full)]
    remaining = nbytes - rounds[0]
    while rounds[-1] == full:
        rounds.append(min(remaining, full))
        remaining -= rounds[-1]
    return rounds


def read_events(link: LinkParams, nbytes: int) -> int:
    rounds = read_rounds(link, nbytes)
    return transaction_events(link, 3, 1 + rounds[0]) + sum(
        transaction_events(link, 5, 1 + size) for size in rounds[1:]
    )


def read_time(link: LinkParams, nbytes: int) -> float:
    """Seconds per read of an ``nbytes`` value, back to back (steady state)."""
    return read_events(link, nbytes) * link.interval_s


def read_throughput(link: LinkParams, nbytes: int) -> float:
    return nbytes / read_time(link, nbytes)


# --------------------------------------------------------------------------- discovery


@lru_cache(maxsize=256)
def discovery_time(
    adv_interval_s: float,
    scan_interval_s: float,
    scan_window_s: float,
    hear_probability: float = 1.0,
    adv_delay_max_s: float = ADV_DELAY_MAX_S,
) -> float:
    """Expected seconds from the start of a scan until an advertiser is first heard.

    The advertiser's first event falls uniformly in the first advertising interval; each later
    event comes ``adv_interval + U(0, adv_delay_max)`` after the previous one. The scanner listens
    during the first ``scan_window`` of every ``scan_interval``; an event inside a window is heard
    with ``hear_probability`` (packet loss, signal at the sensitivity edge). When the intervals are
    commensurate, a missed event is likely to be followed by more misses, so the expectation is
    computed exactly on the phase of the advertising events relative to the scan interval
    (a Markov chain on a discretised circle), not with the geometric approximation.
    Includes the air time of the advertisement that is heard."""
    if scan_window_s >= scan_interval_s:
        q = hear_probability
        mean_gap = adv_interval_s + adv_delay_max_s / 2
        return adv_interval_s / 2 + (1 - q) / q * mean_gap + ADV_PDU_S
    # Bins of at most 0.2 ms, and at least 40 across the window, to keep the edges accurate.
    bins = max(120, min(6000, math.ceil(scan_interval_s / min(0.0002, scan_window_s / 40))))
    h = scan_interval_s / bins
    in_window = [(i + 0.5) * h < scan_window_s for i in range(bins)]
    miss = [1 - hear_probability if w else 1.0 for w in in_window]
    # Where the first event falls: uniform on [0, adv_interval), folded onto the scan interval.
    rho = [0.0] * bins
    _spread(rho, 0.0, adv_interval_s, 1.0, h)
    # One step: shift by adv_interval mod scan_interval plus U(0, delay), as bin weights.
    shift = adv_interval_s % scan_interval_s
    kernel = _kernel(shift, adv_delay_max_s, h, bins)
    mean_gap = adv_interval_s + adv_delay_max_s / 2
    expected = adv_interval_s / 2 + ADV_PDU_S
    for _ in range(200_000):
        rho = [r * m for r, m in zip(rho, miss, strict=True)]
        unheard = sum(rho)
        if unheard < 1e-10:
            break
        expected += unheard * mean_gap
        rho = _convolve(rho, kernel, bins)
    return expected


def _spread(rho: list[float], start: float, length: float, mass: float, h: float) -> None:
    """Add ``mass`` spread uniformly over [start, start + length) onto the circular bins."""
    bins = len(rho)
    if length <= 0:
        rho[int(start / h) % bins] += mass
        return
    density = mass / length
    t = start
    end = start + length
    while t < end - 1e-15:
        index = int(t / h + 1e-12)
        upper = min(end, (index + 1) * h)
        rho[index % bins] += density * (upper - t)
        t = upper


def _kernel(shift: float, spread: float, h: float, bins: int) -> list[tuple[int, float]]:
    """(bin offset, probability) of moving from the centre of a bin by shift + U(0, spread).
    Offsets are not folded: they may exceed ``bins`` (the caller wraps them)."""
    span = int((0.5 * h + shift + spread) / h) + 2
    weights = [0.0] * span
    if spread <= 0:
        weights[int((0.5 * h + shift) / h)] = 1.0
    else:
        t, end = 0.5 * h + shift, 0.5 * h + shift + spread
        while t < end - 1e-15:
            index = int(t / h + 1e-12)
            upper = min(end, (index + 1) * h)
            weights[index] += (upper - t) / spread
            t = upper
    return [(offset, w) for offset, w in enumerate(weights) if w > 0]


def _convolve(rho: list[float], kernel: list[tuple[int, float]], bins: int) -> list[float]:
    """Move every bin's mass along the kernel, circularly: out[j] = sum_d w_d rho[j - d].

    The kernel is a run of equal weights with partial ends, so the run is a moving sum computed
    with prefix sums: O(bins) per step whatever the advDelay spread."""
    if len(kernel) <= 3:
        out = [0.0] * bins
        for offset, w in kernel:
            for i, mass in enumerate(rho):
                out[(i + offset) % bins] += mass * w
        return out
    (first, w_first), *body, (last, w_last) = kernel
    lo, hi, w = body[0][0], body[-1][0], body[0][1]
    wrap = (hi // bins + 1) * bins
    prefix = [0.0, *accumulate(rho[k % bins] for k in range(wrap + bins))]
    out = [0.0] * bins
    for j in range(bins):
        moving = prefix[j - lo + wrap + 1] - prefix[j - hi + wrap]
        out[j] = w * moving + w_first * rho[(j - first) % bins] + w_last * rho[(j - last) % bins]
    return out


def hear_probability(
    rssi_dbm: float, noise_db: float, sensitivity_dbm: float, loss_rate: float = 0.0
) -> float:
    """Chance that one advertisement is received: not lost, and its RSSI sample (mean + Gaussian
    noise) at or above the scanner's sensitivity."""
    if noise_db <= 0:
        above = 1.0 if rssi_dbm >= sensitivity_dbm else 0.0
    else:
        # Samples are rounded to whole dBm, like a controller reports them.
        z = (rssi_dbm - (sensitivity_dbm - 0.5)) / noise_db
        above = 0.5 * math.erfc(-z / math.sqrt(2))
    return above * (1 - loss_rate)


def connection_time(
    adv_interval_s: float,
    link: LinkParams,
    scan_interval_s: float = 0.060,
    scan_window_s: float = 0.060,
    hear_probability: float = 1.0,
) -> float:
    """Expected seconds of an ideal connect: wait for a connectable advertisement the initiator
    hears, CONNECT_IND, the transmit window, then the ATT MTU exchange in the first two
    connection events (request in the first, response in the second)."""
    discovery = discovery_time(adv_interval_s, scan_interval_s, scan_window_s, hear_probability)
    first_anchor = T_IFS_S + CONNECT_IND_S + TRANSMIT_WINDOW_DELAY_S + TRANSMIT_WINDOW_S / 2
    mtu_exchange = link.interval_s + exchange_s(min(link.data_length, 3 + L2CAP_HEADER), link.phy)
    return discovery + first_anchor + mtu_exchange


def supervision_timeout_ok(timeout_s: float, interval_s: float, latency: int = 0) -> bool:
    """The spec's rule: supervision timeout > (1 + latency) x interval x 2."""
    return timeout_s > (1 + latency) * interval_s * 2
