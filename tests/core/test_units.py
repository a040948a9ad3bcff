"""Pure pieces: parsers, company names, the device tracker, the retry policy."""

from __future__ import annotations

import pytest

from mcp_ble.core.errors import (
    BleTimeout,
    ConnectionFailed,
    GattError,
    InvalidInput,
    OperationInProgress,
    OutOfSlots,
    ValueTooLong,
)
from mcp_ble.core.models import Advertisement, ScanFilter
from mcp_ble.core.plans import Operation
from mcp_ble.core.sig import company_name, printable_text
from mcp_ble.core.tracker import AdvertisementTracker
from mcp_ble.core.values import parse_address, parse_handle, parse_uuid, parse_value
from mcp_ble.plugins.retry import RetryPolicy, RetrySettings


def test_addresses():
    assert parse_address("c4-7c-8d-6a-12-01") == "C4:7C:8D:6A:12:01"
    assert parse_address(" C4:7C:8D:6A:12:01 ") == "C4:7C:8D:6A:12:01"
    mac_uuid = "6F1A2B3C-0000-4000-8000-00112233AABB"
    assert parse_address(mac_uuid) == mac_uuid.lower()
    for bad in ("C4:7C:8D:6A:12", "C4:7C:8D:6A:12:0G", "C4:7C-8D:6A:12:01", ""):
        with pytest.raises(InvalidInput, match="is not a Bluetooth address"):
            parse_address(bad)


def test_uuids_and_handles():
    assert parse_uuid("2A19") == "00002a19-0000-1000-8000-00805f9b34fb"
    assert parse_uuid("0x2a19") == "00002a19-0000-1000-8000-00805f9b34fb"
    assert parse_uuid("12345678") == "12345678-0000-1000-8000-00805f9b34fb"
    with pytest.raises(InvalidInput, match="'2a1' is not a UUID"):
        parse_uuid("2a1")
    assert parse_handle(14) == 14
    assert parse_handle("#0x0e") == 14
    assert parse_handle("handle:14") == 14
    assert parse_handle("2a19") is None
    with pytest.raises(InvalidInput, match="out of range"):
        parse_handle(70000)


def test_values():
    assert parse_value("01 02:ff", "hex") == b"\x01\x02\xff"
    assert parse_value("0x0102", "hex") == b"\x01\x02"
    assert parse_value("héllo", "utf8") == "héllo".encode()
    assert parse_value("AQI=", "base64") == b"\x01\x02"
    with pytest.raises(InvalidInput, match="odd number"):
        parse_value("123", "hex")
    with pytest.raises(InvalidInput, match=r"'high_alert' is not hex \('h'"):
        parse_value("high_alert", "hex")  # not "an odd number of digits": not hex at all
    with pytest.raises(InvalidInput, match="not valid base64"):
        parse_value("AQI", "base64")
    assert len(parse_value("a" * 513, "utf8")) == 513  # the attribute limit is the app's
    with pytest.raises(ValueTooLong, match="65537 bytes; one call sends at most 65536"):
        parse_value("a" * 65537, "utf8")


def test_company_names_come_from_the_sigs_table():
    assert company_name(0x004C) == "Apple, Inc."
    assert company_name(0x0059) == "Nordic Semiconductor ASA"
    assert company_name(0x0D53) == "Luxottica Group S.p.A"  # assigned after bleak's table
    assert company_name(0xFFFE) is None  # not assigned


def test_printable_text():
    assert printable_text(b"hello\x00\x00") == "hello"
    assert printable_text(b"\x01\x02") is None
    assert printable_text(b"\xff") is None


def test_tracker_merges_and_bounds():
    now = [0.0]
    tracker = AdvertisementTracker(capacity=2, clock=lambda: now[0])
    first = Advertisement("AA:00:00:00:00:01", -70, service_uuids=("a",))
    record, new = tracker.ingest(first)
    assert new
    now[0] = 1.0
    record, new = tracker.ingest(
        Advertisement(
            "AA:00:00:00:00:01", -60, name="X", service_uuids=("b",), manufacturer_data={1: b"\x01"}
        )
    )
    assert not new and record.rssi == -60 and record.name == "X" and record.seen_count == 2
    assert record.service_uuids == ("a", "b")
    tracker.ingest(Advertisement("AA:00:00:00:00:02", -50))
    tracker.ingest(Advertisement("AA:00:00:00:00:03", -40))
    assert len(tracker) == 2 and tracker.get("AA:00:00:00:00:01") is None
    assert [r.address for r in tracker.recent(10)] == ["AA:00:00:00:00:03", "AA:00:00:00:00:02"]
    now[0] = 100.0
    assert tracker.forget_older_than(50) == 2


def test_scan_filter_matches_merged_records():
    adv = Advertisement(
        "AA:00:00:00:00:01",
        -70,
        name="Thermo",
        service_uuids=(parse_uuid("181a"),),
        manufacturer_data={0x59: b""},
    )
    assert ScanFilter(name="THERM").matches(adv)
    assert not ScanFilter(name="hrm").matches(adv)
    assert ScanFilter(service_uuid=parse_uuid("181a"), min_rssi=-70).matches(adv)
    assert not ScanFilter(min_rssi=-69).matches(adv)
    assert ScanFilter(manufacturer_id=0x59).matches(adv)
    assert not ScanFilter(manufacturer_id=0x4C).matches(adv)


def op(kind="connect"):
    return Operation(kind, "AA:00:00:00:00:01", deadline=1e12)


def test_retry_policy_classifies_failures():
    policy = RetryPolicy(RetrySettings(max_attempts=4, initial_delay_s=0.1, max_delay_s=0.3))
    transient = ConnectionFailed("aborted")
    assert [policy.delay(op(), transient, n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, None]
    assert policy.delay(op(), OutOfSlots("full"), 1) == 4.0
    assert policy.delay(op(), OperationInProgress("busy"), 1) == 0.01
    assert policy.delay(op(), BleTimeout("slow"), 1) is None
    assert policy.delay(op(), GattError(0x05, "read"), 1) is None
    assert policy.delay(op("read"), transient, 1) == 0.1
    assert policy.delay(op("write"), transient, 1) is None
    assert policy.delay(op("write_without_response"), transient, 1) is None
    # refused before it was sent: safe to send again, even for a write
    assert policy.delay(op("write"), OperationInProgress("busy"), 1) == 0.01
    waited = ConnectionFailed("aborted")
    waited.waited_s = 0.15  # the backend already waited this long after the failure
    assert policy.delay(op(), waited, 2) == pytest.approx(0.05)
    waited.waited_s = 1.0
    assert policy.delay(op(), waited, 1) == 0.0
    unsafe = RetryPolicy(RetrySettings(retry_writes=True, operations=["write"]))
    assert unsafe.delay(op("write"), transient, 1) == 0.25


def test_every_att_error_code_reads_as_what_it_is():
    from mcp_ble.core.errors import GattError

    # Core spec Vol 3, Part F, 3.4.1.1, Table 3.4: 0x01..0x13 are all named.
    for code in range(0x01, 0x14):
        error = GattError(code, "write")
        assert f"(ATT error 0x{code:02X})" in str(error) and error.hint, code
        assert f"ATT error 0x{code:02X} (ATT error" not in str(error)
    # Common profile and service errors (Core Spec Supplement, Part B, 1.2).
    assert "Write Request Rejected (ATT error 0xFC)" in str(GattError(0xFC, "write"))
    assert "Out of Range (ATT error 0xFF)" in str(GattError(0xFF, "write"))
    assert "Procedure Already in Progress" in str(GattError(0xFE, "write"))
    assert "Improperly Configured" in str(GattError(0xFD, "write"))
    for code in (0x80, 0x9F):
        text = str(GattError(code, "write"))
        assert f"application error 0x{code:02X} (defined by the device's profile)" in text
        assert "(ATT error" not in text and GattError(code, "write").hint
    assert "reserved for future use" in str(GattError(0x14, "read"))
    assert "reserved for common profile errors" in str(GattError(0xE0, "read"))
