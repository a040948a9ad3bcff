"""Advertisement test vectors: real payloads with the readings they carry, one or more per
decoder plugin, each with its source named.

The payloads and expected values come from each parser library's own test suite (the test named
in ``source``) or, for Eddystone, from Google's format specification; the readings are what
mcp-ble reports (measurement keys, values, units). Addresses are the sources' own except where
the source used a macOS device UUID (marked): they matter to the encrypted formats (the address
is part of the nonce) and nowhere else. Used by tests/plugins/test_decoders.py and the MCP tests
of ``ble_sensors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_ble.core.models import Advertisement

BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"
MIBEACON = "0000fe95-0000-1000-8000-00805f9b34fb"
QINGPING = "0000fdcd-0000-1000-8000-00805f9b34fb"
EDDYSTONE = "0000feaa-0000-1000-8000-00805f9b34fb"


@dataclass(frozen=True)
class Vector:
    """One advertisement and the readings it must give: ``expected`` maps each reading's key
    to (measurement, value, unit)."""

    id: str
    plugin: str
    source: str
    address: str
    name: str | None
    expected: dict[str, tuple[str, Any, str | None]]
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()
    #: The key this device needs in the plugin's settings section (hex), if encrypted.
    key: str | None = None

    def advertisement(self, rssi: int = -60) -> Advertisement:
        return Advertisement(
            self.address,
            rssi,
            self.name,
            None,
            True,
            self.service_uuids,
            dict(self.manufacturer_data),
            dict(self.service_data),
        )


VECTORS = [
    Vector(
        "bthome_v2",
        "bthome",
        "bthome-ble tests/test_parser_v2.py::test_bthome_temperature_humidity",
        "A4:C1:38:8D:18:B2",
        "ATC_8D18B2",
        {
            "temperature": ("temperature", 25.06, "°C"),
            "humidity": ("humidity", 50.55, "%"),
        },
        service_data={BTHOME: b"\x40\x02\xca\x09\x03\xbf\x13"},
    ),
    Vector(
        "bthome_v2_pressure",
        "bthome",
        "bthome-ble tests/test_parser_v2.py::test_mac_as_name",
        "A4:C1:38:8D:18:B3",
        None,
        {"pressure": ("pressure", 1008.83, "mbar")},
        service_data={BTHOME: b"\x40\x04\x13\x8a\x01"},
    ),
    Vector(
        "bthome_v2_encrypted",
        "bthome",
        "bthome-ble tests/test_parser_v2.py::test_bindkey_correct (Shelly BLU H&T)",
        "54:48:E6:8F:80:A5",
        "SBHT-003C",
        {
            "temperature": ("temperature", 25.06, "°C"),
            "humidity": ("humidity", 50.55, "%"),
            "encryption": ("encryption", "decrypted", None),
        },
        service_data={BTHOME: b"\x41\xa4\x72\x66\xc9\x5f\x73\x00\x11\x22\x33\x78\x23\x72\x14"},
        key="231d39c1d7cc1ab1aee224cd096db932",
    ),
    Vector(
        "bthome_v2_plaintext_key_set",
        "bthome",
        "bthome_v2's payload from a device with a key in the settings (bthome-ble ignores it)",
        "A4:C1:38:8D:18:B4",
        "ATC_8D18B4",
        {"encryption": ("encryption", "not encrypted (key set: values ignored)", None)},
        service_data={BTHOME: b"\x40\x02\xca\x09\x03\xbf\x13"},
        key="231d39c1d7cc1ab1aee224cd096db932",
    ),
    Vector(
        "xiaomi_lywsd03mmc",
        "xiaomi",
        "xiaomi-ble tests/test_parser.py::test_Xiaomi_LYWSD03MMC (MiBeacon v3)",
        "A4:C1:38:B4:94:4C",
        "Test",
        {
            "temperature": ("temperature", 27.2, "°C"),
            "humidity": ("humidity", 49.0, "%"),
        },
        service_data={MIBEACON: b"P0[\x05\x03L\x94\xb48\xc1\xa4\r\x10\x04\x10\x01\xea\x01"},
        service_uuids=(MIBEACON,),
    ),
    Vector(
        "xiaomi_lywsd03mmc_encrypted",
        "xiaomi",
        "xiaomi-ble tests/test_parser.py::test_Xiaomi_LYWSD03MMC_encrypted (MiBeacon v5)",
        "A4:C1:38:02:83:F4",
        "Test",
        {
            "humidity": ("humidity", 46, "%"),
            "encryption": ("encryption", "decrypted", None),
        },
        service_data={
            MIBEACON: b"XX[\x05P\xf4\x83\x028\xc1\xa4\x95\xefXv<&\x00\x00\x97\xe2\xab\xb5"
        },
        service_uuids=(MIBEACON,),
        key="e9ea895fac7cca6d30532432a516f3a8",
    ),
    Vector(
        "govee_h5075",
        "govee",
        "govee-ble tests/test_parser.py::test_gvh5075 (address ours: the source's is a macOS UUID)",
        "A4:C1:38:75:27:62",
        "GVH5075_2762",
        {
            "temperature": ("temperature", 21.3, "°C"),
            "humidity": ("humidity", 44.2, "%"),
            "battery": ("battery", 100, "%"),
        },
        manufacturer_data={60552: b"\x00\x03A\xc2d\x00L\x00\x02\x15INTELLI_ROCKS_HWPu\xf2\xff\x0c"},
        service_uuids=("0000ec88-0000-1000-8000-00805f9b34fb",),
    ),
    Vector(
        "inkbird_ibs_th",
        "inkbird",
        "inkbird-ble tests/test_parser.py::test_sps (IBS-TH)",
        "AA:BB:CC:DD:EE:FF",
        "sps",
        {
            "temperature": ("temperature", 20.44, "°C"),
            "humidity": ("humidity", 48.07, "%"),
            "battery": ("battery", 86, "%"),
        },
        manufacturer_data={2044: b"\xc7\x12\x00\xc8=V\x06"},
        service_uuids=("0000fff0-0000-1000-8000-00805f9b34fb",),
    ),
    Vector(
        "qingping_air_monitor",
        "qingping",
        "qingping-ble tests/test_parser.py::test_air_monitor (CGDN1)",
        "AA:BB:CC:DD:EE:F0",
        "Qingping Air Monitor Lite",
        {
            "temperature": ("temperature", 25.9, "°C"),
            "humidity": ("humidity", 53.4, "%"),
            "carbon_dioxide": ("carbon_dioxide", 549, "ppm"),
            "pm25": ("pm25", 2, "µg/m³"),
            "pm10": ("pm10", 2, "µg/m³"),
        },
        service_data={
            QINGPING: b"\x88\x0e\xd6\x88\x8f\xe6HT\x01\x04\x03\x01\x16"
            b"\x02\x12\x04\x02\x00\x02\x00\x13\x02%\x02"
        },
    ),
    Vector(
        "ruuvitag_v5",
        "ruuvitag",
        "ruuvitag-ble tests/test_v5.py::test_parsing_v5 (data format 5)",
        "C8:25:2D:8E:EF:AF",
        "Test",
        {
            "temperature": ("temperature", 7.2, "°C"),
            "humidity": ("humidity", 61.84, "%"),
            "pressure": ("pressure", 1013.54, "hPa"),
            "voltage": ("voltage", 2395, "mV"),
            "movement_counter": ("count", 114, None),
            "acceleration_x": ("acceleration", -7.02, "m/s²"),
            "acceleration_y": ("acceleration", 6.39, "m/s²"),
            "acceleration_z": ("acceleration", -2.51, "m/s²"),
            "acceleration_total": ("acceleration", 9.82, "m/s²"),
        },
        manufacturer_data={1177: bytes.fromhex("0505a060a0c89afd34028cff006376726976dead7b3fefaf")},
    ),
    Vector(
        "sensorpush_ht_w",
        "sensorpush",
        "sensorpush-ble tests/test_parser.py::test_ht_w",
        "AA:BB:CC:DD:0C:A1",
        "SensorPush HT.w 0CA1",
        {
            "temperature": ("temperature", 20.53, "°C"),
            "humidity": ("humidity", 44.9, "%"),
        },
        manufacturer_data={39428: b"\xc9\xa5F"},
        service_uuids=("ef090000-11d6-42ba-93b8-9dd7ec090ab0",),
    ),
    Vector(
        "thermopro_tp357",
        "thermopro",
        "thermopro-ble tests/test_parser.py::test_tp357",
        "AA:BB:CC:DD:21:42",
        "TP357 (2142)",
        {
            "temperature": ("temperature", 24.1, "°C"),
            "humidity": ("humidity", 29, "%"),
            "battery": ("battery", 100, "%"),
        },
        manufacturer_data={61890: b"\x00\x1d\x02,"},
    ),
    Vector(
        "bluemaestro_tempo_disc",
        "bluemaestro",
        "bluemaestro-ble tests/test_parser.py::test_temp_disc_thd (Tempo Disc THD)",
        "AA:BB:CC:DD:B6:2C",
        "FA17B62C",
        {
            "temperature": ("temperature", 24.2, "°C"),
            "humidity": ("humidity", 49.8, "%"),
            "dew_point": ("dew_point", 13.1, "°C"),
            "battery": ("battery", 100, "%"),
        },
        manufacturer_data={
            307: b"\x17d\x0e\x10\x00\x02\x00\xf2\x01\xf2\x00\x83\x01\x00\x01\r\x02\xab\x00\xf2"
            b"\x01\xf2\x01\r\x02\xab\x00\xf2\x01\xf2\x00\xff\x02N\x00\x00\x00\x00\x00"
        },
    ),
    Vector(
        "ibeacon",
        "ibeacon",
        "ibeacon-ble tests/test_init.py::test_parse (a BlueCharm beacon)",
        "C0:00:00:17:79:99",
        "BlueCharm_177999",
        {
            "uuid": ("uuid", "426c7565-4368-6172-6d42-6561636f6e73", None),
            "major": ("major", 3838, None),
            "minor": ("minor", 4949, None),
            "tx_power": ("tx_power", -59, "dBm"),
        },
        manufacturer_data={76: b"\x02\x15BlueCharmBeacons\x0e\xfe\x13U\xc5"},
    ),
    Vector(
        "eddystone_tlm",
        "eddystone",
        "the same BlueCharm beacon's TLM frame (ibeacon-ble tests/test_init.py SERVICE_INFO), "
        "fields per google/eddystone eddystone-tlm/tlm-plain.md",
        "C0:00:00:17:79:9A",
        "BlueCharm_177999",
        {
            "voltage": ("voltage", 3070, "mV"),
            "temperature": ("temperature", 28.0, "°C"),
            "advertisement_count": ("advertisement_count", 1800, None),
            "uptime": ("uptime", 1599.6, "s"),
        },
        service_data={EDDYSTONE: b" \x00\x0b\xfe\x1c\x00\x00\x00\x07\x08\x00\x00>|"},
        service_uuids=(EDDYSTONE,),
    ),
    Vector(
        "eddystone_url",
        "eddystone",
        "google/eddystone eddystone-url/README.md: the example URL https://goo.gl/S6zT6P "
        "(scheme 0x03) and the example TX power 0xEE = -18 dBm",
        "C0:00:00:00:00:02",
        None,
        {
            "url": ("url", "https://goo.gl/S6zT6P", None),
            "tx_power": ("tx_power", -18, "dBm"),
        },
        service_data={EDDYSTONE: b"\x10\xee\x03goo.gl/S6zT6P"},
        service_uuids=(EDDYSTONE,),
    ),
    Vector(
        "eddystone_uid",
        "eddystone",
        "google/eddystone eddystone-uid/README.md frame layout (type 0x00, TX power, 10-byte "
        "namespace, 6-byte instance, 2 RFU bytes); the namespace and instance are ours",
        "C0:00:00:00:00:03",
        None,
        {
            "namespace": ("namespace", "edd1ebeac04e5defa017", None),
            "instance": ("instance", "0123456789ab", None),
            "tx_power": ("tx_power", -20, "dBm"),
        },
        service_data={
            EDDYSTONE: bytes.fromhex("00ec")
            + bytes.fromhex("edd1ebeac04e5defa017")
            + bytes.fromhex("0123456789ab")
            + b"\x00\x00"
        },
        service_uuids=(EDDYSTONE,),
    ),
]

#: Every decoder plugin the vectors need, in an order where each vector's own plugin answers it.
PLUGINS = [
    "bthome",
    "xiaomi",
    "qingping",
    "ruuvitag",
    "bluemaestro",
    "ibeacon",
    "eddystone",
    "inkbird",
    "sensorpush",
    "thermopro",
    "govee",
]


def settings_toml(plugins: list[str] | None = None) -> str:
    """Settings enabling the decoder plugins (after the default ones) with the vectors' keys."""
    names = plugins if plugins is not None else PLUGINS
    default = ["metrics", "retry", "pool", "listeners", "cleanup", "adaptive_scan", "mtu"]
    lines = [f"plugins = {default + names!r}".replace("'", '"')]
    for plugin in ("bthome", "xiaomi"):
        keys = {v.address: v.key for v in VECTORS if v.plugin == plugin and v.key}
        if plugin in names and keys:
            inner = ", ".join(f'"{a}" = "{k}"' for a, k in keys.items())
            lines.append(f"[{plugin}]\nkeys = {{ {inner} }}")
    return "\n".join(lines) + "\n"
