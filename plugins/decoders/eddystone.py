"""``eddystone``: Google's Eddystone beacon frames (UID, URL, TLM, EID), decoded here.

Written by hand from the Eddystone format specification (github.com/google/eddystone, files
eddystone-uid/README.md, eddystone-url/README.md, eddystone-tlm/tlm-plain.md, eddystone-eid): no
kept Python library decodes it. beacontools (MIT) was last released in 2020 and brings a
PyBluez scanner; the CircuitPython Eddystone library builds frames for advertising rather than
parsing them. The format is small and frozen, so this needs no dependency.

Frames are service data of UUID 0xFEAA; the first byte is the frame type. A beacon interleaves
frames (an identity frame, then telemetry), and the store keeps the latest reading of each.

- UID (0x00): ``tx_power`` (calibrated at 0 m, dBm), ``namespace`` (10 bytes, hex),
  ``instance`` (6 bytes, hex).
- URL (0x10): ``tx_power`` and ``url`` (scheme prefix and expansion codes expanded).
- TLM (0x20, version 0, unencrypted): ``voltage`` (mV; 0 = not supported, left out),
  ``temperature`` (°C, signed 8.8 fixed point; 0x8000 = not supported, left out),
  ``advertisement_count`` and ``uptime`` (s, the 0.1 s counter). Encrypted TLM (version 1) needs
  the beacon's EID key and is not decoded.
- EID (0x30): ``tx_power`` and ``eid`` (8 bytes, hex; it rotates by design).
"""

from __future__ import annotations

from ...core.hookspecs import hookimpl
from ...core.models import Advertisement, SensorReading

EDDYSTONE = "0000feaa-0000-1000-8000-00805f9b34fb"
SOURCE = "eddystone"

SCHEMES = ("http://www.", "https://www.", "http://", "https://")
EXPANSIONS = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)  # fmt: skip


def _int8(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def _reading(measurement: str, value: float | int | str, unit: str | None = None) -> SensorReading:
    return SensorReading(measurement, value, unit, SOURCE, measurement, EDDYSTONE)


def decode_url(scheme: int, encoded: bytes) -> str | None:
    """The URL of an Eddystone-URL frame, or None when a byte is outside the encoding."""
    if scheme >= len(SCHEMES) or not encoded:
        return None
    parts = [SCHEMES[scheme]]
    for byte in encoded:
        if byte < len(EXPANSIONS):
            parts.append(EXPANSIONS[byte])
        elif 0x21 <= byte <= 0x7E:
            parts.append(chr(byte))
        else:
            return None  # 0x0e-0x20 and 0x7f-0xff are reserved
    return "".join(parts)


def decode_frame(frame: bytes) -> list[SensorReading] | None:
    """The readings of one Eddystone frame, or None if it is not a valid one."""
    if len(frame) < 2:
        return None
    kind = frame[0]
    if kind == 0x00 and len(frame) >= 18:
        return [
            _reading("tx_power", _int8(frame[1]), "dBm"),
            _reading("namespace", frame[2:12].hex()),
            _reading("instance", frame[12:18].hex()),
        ]
    if kind == 0x10 and 4 <= len(frame) <= 20:
        url = decode_url(frame[2], frame[3:])
        if url is None:
            return None
        return [_reading("tx_power", _int8(frame[1]), "dBm"), _reading("url", url)]
    if kind == 0x20 and frame[1] == 0x00 and len(frame) >= 14:
        readings = []
        millivolts = int.from_bytes(frame[2:4], "big")
        if millivolts:
            readings.append(_reading("voltage", millivolts, "mV"))
        if frame[4:6] != b"\x80\x00":
            readings.append(
                _reading("temperature", int.from_bytes(frame[4:6], "big", signed=True) / 256, "°C")
            )
        readings.append(_reading("advertisement_count", int.from_bytes(frame[6:10], "big")))
        readings.append(_reading("uptime", int.from_bytes(frame[10:14], "big") / 10, "s"))
        return readings
    if kind == 0x30 and len(frame) >= 10:
        return [_reading("tx_power", _int8(frame[1]), "dBm"), _reading("eid", frame[2:10].hex())]
    return None


class EddystonePlugin:
    #: The measurement names of its readings (UID, URL, TLM and EID frames).
    measurements = frozenset(
        {"tx_power", "namespace", "instance", "url", "voltage", "temperature"}
        | {"advertisement_count", "uptime", "eid"}
    )

    @hookimpl
    def mcp_ble_decode_advertisement(
        self, advertisement: Advertisement
    ) -> list[SensorReading] | None:
        frame = advertisement.service_data.get(EDDYSTONE)
        return decode_frame(frame) if frame is not None else None
