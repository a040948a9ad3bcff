"""The esphome backend against the fake ESPHome Bluetooth proxy (tests/testbed/esphome_proxy.py):
aioesphomeapi and bleak-esphome unchanged, the native API over 127.0.0.1 in plaintext and with
Noise encryption; connection slots, the proxy's MTU, key mismatches, settings, and a proxy that
goes away and comes back. (The contract suite runs on it too, encrypted.)"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aioesphomeapi import BluetoothProxyFeature
from bumble.link import LocalLink
from habluetooth import get_manager
from habluetooth.central_manager import CentralBluetoothManager
from mcp.client import Client
from pydantic import SecretStr

from mcp_ble.backends.esphome import EsphomeSettings
from mcp_ble.backends.esphome import _create as create_esphome
from mcp_ble.backends.esphome.backend import EsphomeBackend
from mcp_ble.backends.simulated.world import load_world
from mcp_ble.core import radio
from mcp_ble.core.app import BleApp
from mcp_ble.core.cli import main
from mcp_ble.core.errors import BackendUnavailable, NotPermitted, OutOfSlots
from mcp_ble.core.models import ScanFilter
from mcp_ble.core.server import build_server

from tests.backends_under_test import CONTRACT_WORLD
from tests.helpers import failure, load, ok, write_config
from tests.testbed.esphome_proxy import FakeProxy, ProxiedWorld

SENSOR = "C0:FF:EE:00:00:01"
OTHER = "C0:FF:EE:00:00:02"
KEY = "LaOYPM8T6tYNmAHuGBZtTe/RRrjuFgOQ8HZrRVk1n3w="
OTHER_KEY = "px4ReF6kNsn8wWb9Rd3V7bYQGFOtAl5qUvWv0tqEcTw="


async def until(predicate, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    assert predicate()


async def test_plaintext_proxy_scans_connects_and_reports_its_slots_and_mtu():
    proxied = await ProxiedWorld.start(load_world(str(CONTRACT_WORLD)), slots=1)
    backend = EsphomeBackend("127.0.0.1", proxied.proxy.port)
    try:
        await backend.start()
        assert backend.info().details["encryption"] == "none"
        await until(lambda: backend.connection_slots() == (0, 1))
        seen = {adv.address async for adv in backend.scan(0.5, ScanFilter())}
        assert {SENSOR, OTHER} <= seen
        await backend.connect(SENSOR, 10.0)
        assert backend.mtu(SENSOR) == 247  # what the proxy negotiated and reported
        await until(lambda: backend.connection_slots() == (1, 1))
        assert backend.info().details["slots"] == "1/1 used"
        with pytest.raises(OutOfSlots) as full:
            await backend.connect(OTHER, 10.0)
        assert "1 of 1 in use" in str(full.value)
        await backend.disconnect(SENSOR)
        await until(lambda: backend.connection_slots() == (0, 1))
        await backend.connect(OTHER, 10.0)
        chars = {c.uuid: c for s in await backend.discover(OTHER) for c in s.characteristics}
        heart_rate = chars["00002a37-0000-1000-8000-00805f9b34fb"]
        beats: list[bytes] = []
        await backend.start_notify(OTHER, heart_rate.handle, beats.append)
        await until(lambda: len(beats) >= 2)
        await backend.stop_notify(OTHER, heart_rate.handle)
        dropped: list[tuple[str, str]] = []
        backend.on_disconnect = lambda address, reason: dropped.append((address, reason))
        await proxied.virtual.drop_link(OTHER)  # the peripheral ends the link
        await until(lambda: bool(dropped))
        assert dropped == [
            (
                OTHER,
                f"the proxy at 127.0.0.1:{proxied.proxy.port} reported the link down: "
                "connection terminated by peer user (0x13)",
            )
        ]
    finally:
        await backend.stop()
        await proxied.stop()
    assert proxied.proxy.accepted == 1 and proxied.proxy.handshake_failures == 0


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_key_mismatches_and_an_unreachable_proxy_are_named_never_the_key(monkeypatch):
    monkeypatch.setenv("KITCHEN_PROXY_KEY", OTHER_KEY)
    link = LocalLink()
    plain = await FakeProxy(link, name="plain", mac="AC:0B:FB:00:00:0A", password="pw").start()
    secret = await FakeProxy(link, name="secret", mac="AC:0B:FB:00:00:0B", psk=KEY).start()
    kitchen = '[[radios]] name = "kitchen"'
    cases = [
        (plain.port, None, "", "refused the API password", "password of [backends.esphome]"),
        (secret.port, OTHER_KEY, "", "refused our encryption key", "noise_psk of [backends"),
        # A radio of the fleet: its [[radios]] table, and the variable its key came from.
        (
            secret.port,
            "$",
            "kitchen",
            "refused our",
            f"KITCHEN_PROXY_KEY (noise_psk_env of {kitchen})",
        ),
        (secret.port, None, "kitchen", "requires encryption", f"Give {kitchen} the proxy's"),
        (plain.port, KEY, "", "does not use encryption", "noise_psk from [backends.esphome], or"),
        (
            plain.port,
            "$",
            "kitchen",
            "does not",
            f"noise_psk_env (KITCHEN_PROXY_KEY) from {kitchen}",
        ),
        (closed_port(), None, "kitchen", "(connection refused)", f"host and port of {kitchen}"),
    ]
    try:
        for port, key, name, says, fix in cases:
            settings = EsphomeSettings(host="127.0.0.1", port=port, connect_timeout_s=5)
            if key == "$":
                settings.noise_psk_env = "KITCHEN_PROXY_KEY"
            elif key:
                settings.noise_psk = SecretStr(key)
            backend = create_esphome(settings, None)  # as the settings build it
            backend.health.name = name  # as a fleet names its radios
            with pytest.raises(BackendUnavailable) as refused:
                await backend.start()
            await backend.stop()
            assert says in str(refused.value) and fix in str(refused.value), str(refused.value)
            assert KEY not in str(refused.value) and OTHER_KEY not in str(refused.value)
        with_password = EsphomeBackend("127.0.0.1", plain.port, password="pw")
        await with_password.start()
        await with_password.stop()
        good = EsphomeBackend("127.0.0.1", secret.port, noise_psk=KEY)
        await good.start()
        await until(lambda: good.connection_slots() is not None)
        assert good.info().details == {
            "proxy": f"127.0.0.1:{secret.port}",
            "encryption": "noise",
            "name": "secret",
            "esphome": "2025.11.0",
            "slots": "0/3 used",
        }
        await good.stop()
        assert secret.accepted == 1 and secret.handshake_failures == 3
        assert plain.handshake_failures == 2 and plain.accepted == 2
    finally:
        await plain.stop()
        await secret.stop()


def test_settings_errors_are_one_line_exit_2_and_never_echo_the_key(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PROXY_KEY", raising=False)
    base = 'backend = "esphome"\n[backends.esphome]\nhost = "127.0.0.1"\n'
    cases = {
        'noise_psk = "bm90LWEta2V5"\n': "decodes to 9 bytes, not 32",
        'noise_psk = "%%%not base64%%%"\n': "noise_psk: not base64; use",
        'noise_psk_env = "PROXY_KEY"\n': "PROXY_KEY, which is not set",
        f'noise_psk = "{KEY}"\nnoise_psk_env = "PROXY_KEY"\n': "not both",
        "port = 70000\n": "less than or equal to 65535",
    }
    for extra, says in cases.items():
        config = write_config(tmp_path, base + extra)
        assert main(["config", "show", "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and says in err, err
        assert "bm90LWEta2V5" not in err and KEY not in err and "not base64%" not in err
    monkeypatch.setenv("PROXY_KEY", KEY)
    config = write_config(tmp_path, base + 'noise_psk_env = "PROXY_KEY"\npassword = "pw"\n')
    assert main(["config", "show", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "backends.esphome.noise_psk_env" in shown and "PROXY_KEY" in shown
    assert KEY not in shown and "noise_psk " not in shown and '"pw"' not in shown
    assert 'backends.esphome.password             "**********"' in shown  # set, not shown
    monkeypatch.setenv("PROXY_KEY", "c2hvcnQ=")
    assert main(["config", "show", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "environment variable PROXY_KEY: decodes to 5 bytes" in err and "c2hvcnQ" not in err


async def test_a_proxy_that_goes_away_is_a_lost_radio_and_is_reacquired(tmp_path, monkeypatch):
    """Through the core, from a settings file whose key comes from the environment: the proxy
    stops (its API connection and links end), the radio is lost with that reason, calls fail at
    once; the proxy comes back on its port and the backend re-acquires it with backoff."""
    monkeypatch.setattr(radio, "RECOVERY_FIRST_S", 0.05)
    monkeypatch.setenv("MCP_BLE_TEST_PROXY_KEY", KEY)
    proxied = await ProxiedWorld.start(load_world(str(CONTRACT_WORLD)), psk=KEY)
    config = write_config(
        tmp_path,
        'backend = "esphome"\nplugins = ["mtu"]\n[server]\nwrite_policy = "open"\n'
        f'[backends.esphome]\nhost = "127.0.0.1"\nport = {proxied.proxy.port}\n'
        'noise_psk_env = "MCP_BLE_TEST_PROXY_KEY"\n',
    )
    loaded, catalog = load(config)
    app = BleApp.create(loaded, catalog)
    try:
        async with Client(build_server(app)) as client:
            await ok(client, "ble_scan", duration_s=0.5)
            connected = await ok(client, "ble_connect", address=SENSOR)
            assert connected["mtu"] == 247 and connected["mtu_by"] == "os"  # the proxy's choice
            await ok(client, "ble_subscribe", address=SENSOR, characteristic="2a19")
            scanning = asyncio.create_task(client.call_tool("ble_scan", {"duration_s": 30.0}))
            await asyncio.sleep(0.2)
            await proxied.proxy.stop()
            scanned = await asyncio.wait_for(scanning, 10)  # ends with the proxy, not in 30 s
            assert scanned.is_error and "closed the API connection" in str(scanned.content)
            await until(lambda: not app.radio.health.ready)
            status = await ok(client, "ble_status")
            assert "closed the API connection" in status["radio"]
            assert status["connections"] == 0
            text, info = await failure(client, "ble_read", address=SENSOR, characteristic="2a19")
            assert info["code"] == "backend_unavailable", text
            ended = await ok(client, "ble_notifications", address=SENSOR, characteristic="2a19")
            assert ended["ended"].startswith("radio lost: the ESPHome proxy at 127.0.0.1")

            await proxied.proxy.start()  # the same port again
            await until(lambda: app.radio.health.ready, 10.0)
            assert app.radio.health.losses == 1
            await ok(client, "ble_scan", duration_s=0.3)
            again = await ok(client, "ble_connect", address=SENSOR)
            assert again["mtu"] == 247
    finally:
        await proxied.stop()
    assert proxied.proxy.accepted == 2


async def test_two_proxies_in_one_process_share_habluetooth_and_keep_their_own_links():
    """Two esphome backends (as a fleet runs them) on two proxies hearing the same peripherals:
    one habluetooth manager for both, each proxy's slots and links its own, and stopping one
    backend leaves the other serving."""
    world = load_world(str(CONTRACT_WORLD))
    proxied = await ProxiedWorld.start(world, psk=KEY, slots=1)
    second = await FakeProxy(
        proxied.virtual.link, name="second", mac="AC:0B:FB:00:00:02", slots=2
    ).start()
    first_radio = EsphomeBackend("127.0.0.1", proxied.proxy.port, noise_psk=KEY)
    second_radio = EsphomeBackend("127.0.0.1", second.port)
    try:
        await first_radio.start()
        await second_radio.start()
        sources = {s.source for s in get_manager().async_current_scanners()}
        assert sources == {"AC:0B:FB:00:00:01", "AC:0B:FB:00:00:02"}  # one manager, both proxies
        await first_radio.connect(SENSOR, 10.0)
        await second_radio.connect(OTHER, 10.0)
        await until(
            lambda: (
                (first_radio.connection_slots(), second_radio.connection_slots())
                == ((1, 1), (1, 2))
            )
        )
        assert first_radio.is_connected(SENSOR) and not second_radio.is_connected(SENSOR)
        await first_radio.stop()
        seen = {adv.address async for adv in second_radio.scan(0.5, ScanFilter())}
        assert SENSOR in seen  # still heard through the second proxy
        assert second_radio.is_connected(OTHER) and second_radio.mtu(OTHER) == 247
    finally:
        await first_radio.stop()
        await second_radio.stop()
        await second.stop()
        await proxied.stop()
    assert CentralBluetoothManager.manager is None  # the last backend to stop tore it down


async def test_a_proxy_that_stops_answering_is_lost_after_its_keepalive():
    """A proxy whose Wi-Fi went away keeps no socket to close: the unanswered pings tell."""
    proxied = await ProxiedWorld.start(load_world(str(CONTRACT_WORLD)), psk=KEY)
    backend = EsphomeBackend("127.0.0.1", proxied.proxy.port, noise_psk=KEY, keepalive_s=0.1)
    try:
        await backend.start()
        await backend.connect(SENSOR, 10.0)
        proxied.proxy.frozen = True
        await until(lambda: not backend.health.ready)
        assert "stopped answering (no ping reply in 0.45 s)" in backend.health.reason
        assert not backend.is_connected(SENSOR)
        proxied.proxy.frozen = False
        await until(lambda: backend.health.ready, 10.0)
    finally:
        await backend.stop()
        await proxied.stop()


async def test_a_proxy_another_client_holds_says_so():
    """ESPHome's bluetooth_proxy forwards advertisements to one API client at a time: a second
    client's subscription is dropped silently, and the missing scanner state tells."""
    proxied = await ProxiedWorld.start(load_world(str(CONTRACT_WORLD)))
    home_assistant = EsphomeBackend("127.0.0.1", proxied.proxy.port)
    ours = EsphomeBackend("127.0.0.1", proxied.proxy.port)
    try:
        await home_assistant.start()
        await ours.start()
        with pytest.raises(BackendUnavailable) as held:
            async for _ in ours.scan(0.3, ScanFilter()):
                pass
        assert "another (Home Assistant?) holds it" in str(held.value)
        assert [a async for a in home_assistant.scan(0.3, ScanFilter())]
    finally:
        await ours.stop()
        await home_assistant.stop()
        await proxied.stop()


async def test_proxies_without_raw_advertisements_or_connections_are_named():
    link = LocalLink()
    raw = BluetoothProxyFeature.RAW_ADVERTISEMENTS
    old = await FakeProxy(link, name="old", features=BluetoothProxyFeature.PASSIVE_SCAN).start()
    passive = await FakeProxy(
        link,
        name="passive",
        mac="AC:0B:FB:00:00:0C",
        features=BluetoothProxyFeature.PASSIVE_SCAN | raw,
    ).start()
    try:
        backend = EsphomeBackend("127.0.0.1", old.port)
        with pytest.raises(BackendUnavailable) as not_raw:
            await backend.start()
        await backend.stop()
        assert "old at 127.0.0.1:" in str(not_raw.value)
        assert "is not a Bluetooth proxy that forwards raw advertisements" in str(not_raw.value)
        backend = EsphomeBackend("127.0.0.1", passive.port)
        await backend.start()
        with pytest.raises(NotPermitted) as scan_only:
            await backend.connect(SENSOR, 1.0)
        await backend.stop()
        assert "only scans: it cannot connect" in str(scan_only.value)
    finally:
        await old.stop()
        await passive.stop()
