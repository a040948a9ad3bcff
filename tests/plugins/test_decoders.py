"""The decoder plugins on their real parser libraries, fed real vectors (tests/sensor_vectors.py,
each naming its source), over the core path: the simulated backend's scan stream -> tracker ->
SensorStore -> the decoder hook in settings order."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_ble.core.cli import main
from mcp_ble.core.errors import ConfigError
from mcp_ble.core.models import Advertisement, ScanFilter
from mcp_ble.plugins.decoders.eddystone import decode_frame

from tests.helpers import load, make_app, write_config
from tests.sensor_vectors import BTHOME, EDDYSTONE, PLUGINS, VECTORS, Vector, settings_toml

KEYED = [v for v in VECTORS if v.key]
#: The encrypted ones (the others send plaintext although a key is set).
ENCRYPTED = [v for v in KEYED if "encryption" in v.expected and "key set" not in str(v.expected)]


def check(vector: Vector, got: list) -> None:
    """The readings are exactly the vector's: keys, measurements, values, units, source."""
    readings = {r.ident: r for r, _ in got}
    assert sorted(readings) == sorted(vector.expected), vector.id
    for key, (measurement, value, unit) in vector.expected.items():
        reading = readings[key]
        assert (reading.measurement, reading.unit, reading.source) == (
            measurement,
            unit,
            vector.plugin,
        ), f"{vector.id}: {key}"
        if isinstance(value, float):
            assert reading.value == pytest.approx(value), f"{vector.id}: {key}"
        else:
            assert reading.value == value, f"{vector.id}: {key}"


async def scan_replayed(app, advs: list[Advertisement]) -> None:
    app.radio.replay(advs)
    await app.scan(300.0, ScanFilter())


async def test_every_vector_through_the_scan_path(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    formats = {v.plugin for v in VECTORS}
    assert len(formats) >= 8 and {"bthome", "ibeacon", "eddystone"} <= formats
    async with make_app(tmp_path, settings_toml()) as app:
        changed: list[str] = []
        app.sensors.add_listener(changed.append)
        # Each sensor repeats its advertisement five times, interleaved with the others.
        await scan_replayed(app, [v.advertisement(-60 - n) for n in range(5) for v in VECTORS])
        for vector in VECTORS:
            check(vector, app.sensors.latest(vector.address))
            assert app.api.sensor_readings(vector.address) == app.sensors.latest(vector.address)
        # decoded once per payload; the readings changed once per device
        assert app.sensors.decodes == len(VECTORS)
        assert sorted(changed) == sorted(v.address for v in VECTORS)
        found = app.sensors.query(app.settings.server.recent_s, measurement="temperature")
        with_temperature = {v.address for v in VECTORS if "temperature" in v.expected}
        assert {d.address for d in found} == with_temperature
    # Keys are never logged, not even by the parser libraries at debug level.
    for vector in KEYED:
        assert vector.key is not None and vector.key not in caplog.text


async def test_encrypted_formats_need_their_key(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "5a" * 16
    toml = settings_toml().split("[bthome]")[0]  # no keys at all
    toml += f'[bthome]\nkeys = {{ "{ENCRYPTED[0].address}" = "{wrong}" }}\n'
    async with make_app(tmp_path, toml) as app:
        await scan_replayed(app, [v.advertisement() for v in ENCRYPTED])
        # a wrong key, or none: no values, nothing fails, and the reading says why
        states = {
            v.id: [(r.ident, r.value) for r, _ in app.sensors.latest(v.address)] for v in ENCRYPTED
        }
        assert states == {
            "bthome_v2_encrypted": [("encryption", "key wrong")],
            "xiaomi_lywsd03mmc_encrypted": [("encryption", "no key")],
        }
        assert app.sensors.decode_errors == 0
    assert wrong not in caplog.text.lower()  # a failed decryption logs no key either


async def test_keys_from_the_environment(tmp_path: Path) -> None:
    bthome = next(v for v in KEYED if v.plugin == "bthome")
    environ = {"MCP_BLE_BTHOME__KEYS": f'{{"{bthome.address.lower()}": "{bthome.key}"}}'}
    toml = settings_toml(["bthome"]).split("[bthome]")[0]
    async with make_app(tmp_path, toml, environ=environ) as app:
        await scan_replayed(app, [bthome.advertisement()])
        check(bthome, app.sensors.latest(bthome.address))


def test_keys_are_never_shown(tmp_path: Path, capsys) -> None:
    """Not by ``mcp-ble config show`` (text or JSON), nor by any settings error."""
    config = write_config(tmp_path, settings_toml())
    for json_flag in ([], ["--json"]):
        assert main(["config", "show", "--config", str(config), *json_flag]) == 0
        shown = capsys.readouterr()
        assert "bthome.keys" in shown.out and "xiaomi.keys" in shown.out
        for vector in KEYED:
            assert vector.key is not None and vector.key not in shown.out + shown.err
    secret = "231d39c1d7cc1ab1aee224cd096db9"  # 30 hex digits: one byte short
    bad = {
        "short": f'[bthome]\nkeys = {{ "54:48:E6:8F:80:A5" = "{secret}" }}',
        "not hex": f'[bthome]\nkeys = {{ "54:48:E6:8F:80:A5" = "zz{secret}" }}',
        "not a string": f'[bthome]\nkeys = {{ "54:48:E6:8F:80:A5" = {int(secret, 16)} }}',
        "bad address": f'[bthome]\nkeys = {{ "kitchen" = "{secret}00" }}',
    }
    for what, text in bad.items():
        with pytest.raises(ConfigError) as caught:
            load(write_config(tmp_path, text, f"{what}.toml"))
        message = str(caught.value)
        assert "bthome.keys" in message, what
        assert secret not in message and str(int(secret, 16)) not in message, what
    with pytest.raises(ConfigError, match="54:48:E6:8F:80:A5 is not 32 hex digits"):
        load(write_config(tmp_path, bad["short"]))


def test_a_missing_library_fails_at_load_naming_the_extra(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'backend = "simulated"\nplugins = ["bthome"]\n')
    code = (
        "import sys; sys.modules['bthome_ble'] = None; from mcp_ble.core.cli import main; "
        f"sys.exit(main(['config', 'show', '--config', {str(config)!r}]))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "plugin 'bthome' cannot be loaded" in lines[0]
    assert "pip install 'mcp-ble[bthome]'" in lines[0]


# A BlueCharm beacon's real advertisement carries an iBeacon frame and an Eddystone TLM frame
# (ibeacon-ble tests/test_init.py SERVICE_INFO): both decoders know it, the first listed wins.
BLUECHARM = Advertisement(
    "C0:00:00:17:79:9B",
    -60,
    "BlueCharm_177999",
    service_uuids=(EDDYSTONE,),
    manufacturer_data={76: b"\x02\x15BlueCharmBeacons\x0e\xfe\x13U\xc5"},
    service_data={
        "00002080-0000-1000-8000-00805f9b34fb": b"k\x0c\x0e\xfe\x13U",
        EDDYSTONE: b" \x00\x0b\xfe\x1c\x00\x00\x00\x07\x08\x00\x00>|",
    },
)


@pytest.mark.parametrize("order", [["ibeacon", "eddystone"], ["eddystone", "ibeacon"]])
async def test_the_first_decoder_in_settings_order_wins(tmp_path: Path, order: list[str]) -> None:
    async with make_app(tmp_path, settings_toml(order)) as app:
        await scan_replayed(app, [BLUECHARM])
        sources = {r.source for r, _ in app.sensors.latest(BLUECHARM.address)}
    assert sources == {order[0]}


def test_eddystone_frames_outside_the_format_are_not_decoded() -> None:
    assert decode_frame(b"") is None and decode_frame(b"\x10") is None
    assert decode_frame(b"\x10\xee\x04goo.gl") is None  # scheme 4 does not exist
    assert decode_frame(b"\x10\xee\x03goo\x0fgl") is None  # 0x0f is reserved
    assert decode_frame(b"\x20\x01" + bytes(12)) is None  # encrypted TLM: needs the EID key
    assert decode_frame(b"\x00\xec" + bytes(10)) is None  # UID cut short
    assert decode_frame(b"\x40\x00") is None  # an unknown frame type
    # a TLM frame from a USB-powered beacon without a sensor: no voltage, no temperature
    tlm = decode_frame(
        b"\x20\x00\x00\x00\x80\x00" + (5).to_bytes(4, "big") + (7).to_bytes(4, "big")
    )
    assert tlm is not None
    assert [(r.measurement, r.value) for r in tlm] == [("advertisement_count", 5), ("uptime", 0.7)]


def test_the_vectors_plugins_are_every_decoder() -> None:
    assert sorted(PLUGINS) == sorted({v.plugin for v in VECTORS})


async def test_a_decoder_trying_every_payload_does_not_end_the_search(tmp_path: Path) -> None:
    """govee tries every payload (its models are known by name); listed first, it must not
    swallow a beacon it does not decode."""
    async with make_app(tmp_path, settings_toml(["govee", "ibeacon"])) as app:
        await scan_replayed(app, [BLUECHARM])
        sources = {r.source for r, _ in app.sensors.latest(BLUECHARM.address)}
    assert sources == {"ibeacon"}


async def test_a_payload_gives_only_its_own_values(tmp_path: Path) -> None:
    """A sensor sending its temperature and its humidity in different packets: the humidity
    packet does not report the last temperature again (the parser libraries keep it)."""
    temperature = b"\x40\x02\xca\x09"  # BTHome v2 (bthome.io/format): 25.06 °C
    humidity = b"\x40\x03\xbf\x13"  # 50.55 %
    sent = [
        Advertisement("C0:FF:EE:5E:00:09", -60, "Split", service_data={BTHOME: payload})
        for payload in (temperature, humidity)
    ]
    async with make_app(tmp_path, settings_toml(["bthome"])) as app:
        plugin = dict(app.plugins)["bthome"]
        decoded = [plugin.mcp_ble_decode_advertisement(advertisement=a) for a in sent]
    assert [[(r.ident, r.value) for r in readings] for readings in decoded] == [
        [("temperature", 25.06)],
        [("humidity", 50.55)],
    ]
