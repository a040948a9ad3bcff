"""SensorStore: the pre-filter, decoding once per payload, readings per device, listeners,
bounds. The decoder here is a plain function so the counts are the store's own; the real parser
libraries run in tests/plugins/test_decoders.py."""

from __future__ import annotations

from mcp_ble.core.models import Advertisement, SensorReading
from mcp_ble.core.sensors import SensorStore

UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(capacity: int = 100, cache_size: int = 64) -> tuple[SensorStore, list[bytes], Clock]:
    seen: list[bytes] = []

    def decode(advertisement: Advertisement) -> list[SensorReading] | None:
        payload = advertisement.service_data.get(UUID)
        if payload is None:
            return None
        seen.append(payload)
        if payload == b"bad":
            raise ValueError("truncated")
        return [
            SensorReading("temperature", payload[0] / 10, "°C", "test"),
            SensorReading("battery", payload[1], "%", "test"),
        ]

    clock = Clock()
    return SensorStore(decode, capacity, cache_size, clock=clock), seen, clock


def adv(address: str, payload: bytes | None, name: str | None = None) -> Advertisement:
    return Advertisement(address, -60, name, service_data={UUID: payload} if payload else {})


def test_decoded_once_per_payload_and_changes_reported() -> None:
    store, seen, clock = make()
    changes: list[str] = []
    store.add_listener(changes.append)
    assert store.ingest(adv("AA", b"\xd7\x50"), clock()) is True
    for _ in range(100):  # a sensor repeating itself: new objects, equal payloads
        assert store.ingest(adv("AA", bytes((0xD7, 0x50))), clock()) is False
    assert seen == [b"\xd7\x50"] and changes == ["AA"]
    assert store.ingest(adv("AA", b"\xd8\x50"), clock()) is True  # 21.6 °C now
    assert store.ingest(adv("AA", b"\xd7\x50"), clock()) is True  # back: cached, still a change
    assert seen == [b"\xd7\x50", b"\xd8\x50"] and store.decodes == 2
    assert changes == ["AA", "AA", "AA"]
    readings = {r.measurement: (r.value, r.unit, t) for r, t in store.latest("AA")}
    assert readings == {"temperature": (21.5, "°C", 100.0), "battery": (80, "%", 100.0)}


def test_prefilter_and_unknown_payloads() -> None:
    store, seen, clock = make()
    assert store.ingest(adv("AA", None), clock()) is False
    assert seen == [] and store.decodes == 0  # nothing to decode never reaches a decoder
    other = Advertisement("BB", -50, manufacturer_data={0x004C: b"\x02\x15"})
    assert store.ingest(other, clock()) is False and store.ingest(other, clock()) is False
    assert store.decodes == 1 and store.latest("BB") == []
    assert store.ingest(adv("CC", b"bad"), clock()) is False  # a decoder raising: logged, None
    assert store.ingest(adv("CC", b"bad"), clock()) is False
    assert store.decode_errors == 1 and seen.count(b"bad") == 1


def test_query_recent_measurement_and_name() -> None:
    store, _, clock = make()
    store.ingest(adv("AA", b"\xd7\x50", "Kitchen"), clock())
    clock.t += 50
    store.ingest(adv("BB", b"\xc8\x20", "Garden"), clock())
    store.ingest(adv("BB", b"\xc8\x20"), clock())  # no name in this report: the last one holds
    found = store.query(300)
    assert [(d.address, d.name) for d in found] == [("BB", "Garden"), ("AA", "Kitchen")]
    assert [r.measurement for r, _ in found[0].readings] == ["battery", "temperature"]
    only = store.query(300, measurement="Temperature", name="kit")
    assert [(d.address, [(r.value, r.unit) for r, _ in d.readings]) for d in only] == [
        ("AA", [(21.5, "°C")])
    ]
    assert [d.address for d in store.query(10)] == ["BB"]  # AA was heard 50 s ago
    assert store.forget_older_than(10) == 1 and store.latest("AA") == []


def test_bounded_devices_and_cache() -> None:
    store, _, clock = make(capacity=10, cache_size=16)
    for i in range(1000):
        store.ingest(adv(f"D{i}", bytes((i & 0xFF, 1))), clock())
    assert len(store) == 10 and len(store._cache) == 16
    assert store.latest("D0") == [] and len(store.latest("D999")) == 2
