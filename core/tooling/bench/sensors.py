"""The ``sensors`` bench group: advertisement ingestion with the decoder plugins on.

A crowd of sensors of several formats (BTHome v2, Xiaomi MiBeacon, RuuviTag, Govee, iBeacon,
Eddystone TLM) and of other advertisers (a phone's changing manufacturer data, devices with no
data at all) reports in turn through the whole discovery pipeline: backend stream -> tracker ->
hooks -> SensorStore -> the real parser libraries -> scan requests. Each sensor's payload is the
previous one except every 8th report, where its reading (and counter) changes, so the run mixes
repeated payloads (answered from the per-payload cache) and new ones (decoded by the library).

The figure is advertisements per second of the process's CPU time: the scan path runs on one
thread, so this is per core, and a busy machine slows the wall clock without changing it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ...models import Advertisement, ScanFilter
from .base import SuiteBase
from .results import Result

if TYPE_CHECKING:
    from ...app import BleApp

BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"
MIBEACON = "0000fe95-0000-1000-8000-00805f9b34fb"
EDDYSTONE = "0000feaa-0000-1000-8000-00805f9b34fb"
#: The decoders this group enables (those installed), in this order, after the settings' own.
DECODERS = ("bthome", "xiaomi", "ruuvitag", "ibeacon", "eddystone", "govee")


def _bthome(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    # BTHome v2 (bthome.io/format): packet id, temperature 0.01 °C, humidity 0.01 %
    t = 2000 + (i * 7 + v * 13) % 800
    h = 4000 + (i * 11 + v * 17) % 2000
    data = bytes((0x40, 0x00, v & 0xFF, 0x02)) + t.to_bytes(2, "little")
    return {BTHOME: data + b"\x03" + h.to_bytes(2, "little")}, {}, f"SBHT-{i:04X}"


def _xiaomi(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    # MiBeacon v3, LYWSD03MMC temperature and humidity object 0x100d (xiaomi-ble's test vector,
    # with this device's address, which the parser checks, frame counter and values)
    mac = bytes((i & 0xFF, i >> 8 & 0xFF, i >> 16 & 0xFF, 0x00, 0x5E, 0x0C))  # address, reversed
    t = 200 + (i + v * 3) % 100
    h = 400 + (i + v * 7) % 200
    data = b"P0[\x05" + bytes((v & 0xFF,)) + mac + b"\r\x10\x04"
    return {MIBEACON: data + t.to_bytes(2, "little") + h.to_bytes(2, "little")}, {}, None


def _ruuvi(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    # RuuviTag data format 5 (ruuvitag-ble's test vector), temperature 0.005 °C and sequence
    base = bytearray.fromhex("0505a060a0c89afd34028cff006376726976dead7b3fefaf")
    base[1:3] = (1000 + (i * 5 + v * 9) % 4000).to_bytes(2, "big")
    base[16:18] = (v & 0xFFFF).to_bytes(2, "big")
    base[18:24] = bytes((0xC8, 0x25, 0x2D, 0x8E, i >> 8 & 0xFF, i & 0xFF))
    return {}, {0x0499: bytes(base)}, None


def _govee(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    # Govee H5075 (govee-ble's test vector): temperature x 10 x 1000 + humidity x 10
    value = (150 + (i + v) % 100) * 1000 + 300 + (i * 3 + v) % 400
    data = b"\x00" + value.to_bytes(3, "big") + b"d\x00"
    return {}, {0xEC88: data}, f"GVH5075_{i & 0xFFFF:04X}"


def _ibeacon(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    # a fixed beacon: the same frame every time
    frame = b"\x02\x15BlueCharmBeacons" + i.to_bytes(2, "big") + b"\x13U\xc5"
    return {}, {0x004C: frame}, None


def _eddystone_tlm(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    # Eddystone TLM: battery, temperature 8.8, advertisement and uptime counters
    data = b"\x20\x00\x0b\xfe" + bytes((20 + (i + v) % 10, 0)) + (v * 8).to_bytes(4, "big")
    return {EDDYSTONE: data + (v * 80).to_bytes(4, "big")}, {}, None


def _phone(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    # not a sensor: Apple's nearby-info manufacturer data, changing; no decoder claims it
    return {}, {0x004C: bytes((0x10, 0x05, 0x01, v & 0xFF, i & 0xFF, 0x1C))}, None


def _silent(i: int, v: int) -> tuple[dict[str, bytes], dict[int, bytes], str | None]:
    return {}, {}, f"Device {i}"  # nothing to decode: stops at the store's first check


KINDS: dict[str, Callable[[int, int], tuple[dict[str, bytes], dict[int, bytes], str | None]]] = {
    "bthome": _bthome,
    "xiaomi": _xiaomi,
    "ruuvitag": _ruuvi,
    "govee": _govee,
    "ibeacon": _ibeacon,
    "eddystone": _eddystone_tlm,
    "phone": _phone,
    "silent": _silent,
}


def sensor_crowd(
    count: int, devices: int, seed: int, formats: tuple[str, ...], change_every: int = 8
) -> Iterator[Advertisement]:
    """``count`` reports from ``devices`` advertisers taking turns: sensors of ``formats`` and
    the two kinds of non-sensors, each report a new object (as backends build them), payloads
    equal to the device's previous report except every ``change_every``-th; RSSI varies."""
    rng = random.Random(seed)
    kinds = [*formats, "phone", "silent"]
    rssi = [rng.randint(-95, -40) for _ in range(devices)]
    made: dict[tuple[int, int], tuple[dict[str, bytes], dict[int, bytes], str | None]] = {}
    for n in range(count):
        i = n % devices
        version = (n // devices) // change_every
        key = (i, version)
        if key not in made:
            made[key] = KINDS[kinds[i % len(kinds)]](i, version)
        service_data, manufacturer_data, name = made[key]
        yield Advertisement(
            f"0C:5E:00:{i >> 16 & 0xFF:02X}:{i >> 8 & 0xFF:02X}:{i & 0xFF:02X}",
            rssi[i] + (n & 3),
            name,
            None,
            True,
            (),
            dict(manufacturer_data),
            dict(service_data),
        )


class SensorsGroup(SuiteBase):
    async def sensors(self) -> None:
        from ...app import BleApp

        self.progress.step("sensors: advertisement ingestion with the decoders on")
        p = self.params
        formats = tuple(n for n in DECODERS if n in self.catalog.plugins)
        settings = self.loaded.settings.model_copy(deep=True)
        settings.plugins = [n for n in settings.plugins if n not in DECODERS] + list(formats)
        advs = list(sensor_crowd(p.adv_count, p.adv_devices, p.seed, formats))
        # Every report a new payload (a tenth as many): what a decode costs without the cache.
        fresh = list(sensor_crowd(p.adv_count // 10, p.adv_devices, p.seed + 1, formats, 1))
        async with BleApp(settings, self.catalog, self.loaded) as app:
            radio = self.backend(app)
            radio.replay(iter(advs[: p.adv_devices]))  # every device's first payload, decoded
            await app.scan(300.0, ScanFilter())
            decodes_before = app.sensors.decodes
            cpu = await self._cpu_seconds(app, advs)
            decodes = app.sensors.decodes - decodes_before
            with_readings = len(app.sensors.query(app.settings.server.recent_s))
            fresh_cpu = await self._cpu_seconds(app, fresh)
        self.results += [
            Result("adv_ingest_decoded_per_s", len(advs) / cpu, "adv/s/core", simulated=False),
            Result("adv_decoded_payloads", decodes, "payloads", simulated=False),
            Result("adv_decoded_share_percent", 100 * decodes / len(advs), "%", simulated=False),
            Result(
                "adv_ingest_uncached_per_s", len(fresh) / fresh_cpu, "adv/s/core", simulated=False
            ),
            Result("sensor_devices_with_readings", with_readings, "devices", simulated=False),
            Result("sensor_formats", len(formats), "formats", simulated=False),
        ]

    async def _cpu_seconds(self, app: BleApp, advs: list[Advertisement]) -> float:
        """CPU seconds of this process for the discovery pipeline to take in ``advs``."""
        self.backend(app).replay(iter(advs))
        cpu = time.process_time()
        await app.scan(300.0, ScanFilter())
        return time.process_time() - cpu
