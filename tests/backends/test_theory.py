"""The ideal figures: air time, fragmentation, throughput formulas and discovery expectations."""

from __future__ import annotations

import random

import pytest

from mcp_ble.backends.simulated import theory
from mcp_ble.backends.simulated.theory import LinkParams


def test_air_time_per_phy():
    # 1M: 1 + 4 + 2 + 251 + 3 bytes at 8 µs; 2M: 2 + 4 + 2 + 251 + 3 bytes at 4 µs.
    assert theory.packet_airtime_s(251, "1M") == pytest.approx(2088e-6)
    assert theory.packet_airtime_s(251, "2M") == pytest.approx(1048e-6)
    assert theory.packet_airtime_s(0, "1M") == pytest.approx(80e-6)
    # Coded: 376 µs of fixed fields, then 8 bits per byte at S µs per bit, plus TERM2.
    assert theory.packet_airtime_s(27, "coded") == pytest.approx(376e-6 + (32 * 8 + 3) * 8e-6)
    assert theory.packet_airtime_s(27, "coded_s2") == pytest.approx(376e-6 + (32 * 8 + 3) * 2e-6)
    with pytest.raises(ValueError, match="unknown PHY"):
        theory.packet_airtime_s(27, "3M")


def test_fragments_carry_the_l2cap_header():
    assert theory.fragments(23, 27) == [27]  # 23 + 4 fits one packet exactly
    assert theory.fragments(247, 251) == [251]
    assert theory.fragments(247, 27) == [27] * 9 + [8]
    assert sum(theory.fragments(515, 251)) == 519


def test_stream_throughput_is_the_textbook_formula_when_one_pdu_fits_one_packet():
    link = LinkParams(interval_s=0.015, phy="2M", mtu=247, data_length=251, packets_per_event=6)
    assert theory.stream_throughput(link) == pytest.approx(6 * 244 / 0.015)
    assert theory.stream_time(link, 65536) == pytest.approx(65536 / (6 * 244 / 0.015))
    lossy = LinkParams(**{**link.__dict__, "loss_rate": 0.1})
    assert theory.stream_throughput(lossy) == pytest.approx(0.9 * 6 * 244 / 0.015)


def test_stream_throughput_is_limited_by_air_time_buffers_and_fragmentation():
    # 1M, 7.5 ms: a 251-byte exchange takes 2.468 ms, so only 3 fit, not 6.
    tight = LinkParams(interval_s=0.0075, phy="1M", mtu=247, data_length=251, packets_per_event=6)
    assert theory.slots_per_event(tight, 251) == (3, 1)
    assert theory.stream_throughput(tight) == pytest.approx(3 * 244 / 0.0075)
    buffered = LinkParams(interval_s=0.030, mtu=247, data_length=251, tx_buffers=2)
    assert theory.stream_throughput(buffered) == pytest.approx(2 * 244 / 0.030)
    # No DLE: 251-byte L2CAP frames travel as 10 packets of up to 27 bytes.
    no_dle = LinkParams(interval_s=0.030, mtu=247, data_length=27, packets_per_event=4)
    assert theory.stream_throughput(no_dle) == pytest.approx(244 * 4 / 10 / 0.030)
    # A Coded S=8 exchange of 251 bytes (~17 ms) spans two 15 ms events.
    coded = LinkParams(interval_s=0.015, phy="coded", mtu=247, data_length=251)
    assert theory.slots_per_event(coded, 251) == (1, 2)


def test_typical_throughputs():
    # 1M with DLE ~0.7-0.8 Mbit/s, 2M ~1.2-1.4 Mbit/s, without DLE ~0.2-0.3 Mbit/s.
    one_m = LinkParams(interval_s=0.030, phy="1M", mtu=247, data_length=251, packets_per_event=12)
    two_m = LinkParams(
        interval_s=0.030, phy="2M", mtu=247, data_length=251, packets_per_event=21, tx_buffers=32
    )
    no_dle = LinkParams(interval_s=0.0075, phy="1M", mtu=247, data_length=27, packets_per_event=10)
    assert 0.7e6 <= theory.stream_throughput(one_m) * 8 <= 0.8e6
    assert 1.2e6 <= theory.stream_throughput(two_m) * 8 <= 1.4e6
    assert 0.15e6 <= theory.stream_throughput(no_dle) * 8 <= 0.3e6


def test_request_response_periods():
    link = LinkParams(interval_s=0.015, phy="2M", mtu=247, data_length=251, packets_per_event=6)
    # Write with response: request in one event, response in the next.
    assert theory.write_with_response_events(link, 244) == 2
    assert theory.write_with_response_throughput(link) == pytest.approx(244 / 0.030)
    # 512 bytes: three Prepare Writes of up to 242 bytes, then Execute Write.
    assert theory.write_with_response_events(link, 512) == 3 * 2 + 2
    # Reads: Read, then Read Blob while a response was full (246 bytes), a last empty one.
    assert theory.read_rounds(link, 512) == [246, 246, 20]
    assert theory.read_rounds(link, 492) == [246, 246, 0]
    assert theory.read_rounds(link, 10) == [10]
    assert theory.read_time(link, 512) == pytest.approx(6 * 0.015)


def _monte_carlo(adv, interval, window, q, runs, seed):
    rng = random.Random(seed)
    total = 0.0
    for _ in range(runs):
        t = rng.uniform(0, adv)
        while not ((t % interval) < window and rng.random() < q):
            t += adv + rng.uniform(0, theory.ADV_DELAY_MAX_S)
        total += t + theory.ADV_PDU_S
    return total / runs


@pytest.mark.parametrize(
    ("adv", "interval", "window", "q"),
    [
        (0.100, 0.100, 0.030, 1.0),  # commensurate: misses come in runs
        (0.152, 0.100, 0.020, 1.0),
        (0.020, 0.100, 0.010, 0.9),
        (0.100, 0.060, 0.060, 0.7),  # continuous scanning with losses
    ],
)
def test_discovery_expectation_matches_monte_carlo(adv, interval, window, q):
    expected = theory.discovery_time(adv, interval, window, q)
    assert _monte_carlo(adv, interval, window, q, 20_000, 5) == pytest.approx(expected, rel=0.03)


def test_discovery_with_continuous_scanning_is_half_an_interval():
    assert theory.discovery_time(0.1, 0.06, 0.06) == pytest.approx(0.05 + theory.ADV_PDU_S)
    # The geometric approximation would say 0.1/2 + (0.7/0.3) * 0.105 = 0.295 s: far too short
    # when the advertising and scan intervals are equal.
    assert theory.discovery_time(0.1, 0.1, 0.03) > 0.5


def test_connection_time_components():
    link = LinkParams(interval_s=0.030)
    ideal = theory.connection_time(0.1, link)
    discovery = theory.discovery_time(0.1, 0.06, 0.06)
    assert ideal == pytest.approx(discovery + 150e-6 + 352e-6 + 1.25e-3 + 0.625e-3 + 0.030 + 516e-6)


def test_hear_probability_and_supervision_rule():
    assert theory.hear_probability(-60, 2, -100) == pytest.approx(1.0)
    assert theory.hear_probability(-100, 3, -100) == pytest.approx(0.5663, abs=1e-3)
    assert theory.hear_probability(-60, 0, -100, loss_rate=0.2) == pytest.approx(0.8)
    assert theory.supervision_timeout_ok(0.1, 0.0075)
    assert not theory.supervision_timeout_ok(0.06, 0.030)
