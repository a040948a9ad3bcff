"""A 64 KiB chunked write at MTU 517, through the core and its chunking plugin, on every backend.

At MTU 516-517 one packet carries 513-514 bytes, more than the 512 an attribute holds: every piece
must still be at most 512 bytes. The UART's RX echoes each piece back as a notification on TX, so
the test checks what arrived, byte for byte, in order.
"""

from __future__ import annotations

from typing import Any

import pytest

from mcp_ble.core.app import BleApp
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.models import ScanFilter

from tests.backends_under_test import BACKENDS, CONTRACT_WORLD
from tests.helpers import load, write_config

SENSOR = "C0:FF:EE:00:00:01"
RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


class Borrowed:
    """Registers a backend that is already running (the contract fixture owns its lifetime)."""

    backend: Any = None

    @hookimpl
    def mcp_ble_register_backends(self, register: Any) -> None:
        register("borrowed", lambda settings, app: Borrowed.backend)


async def _noop() -> None:
    return None


@pytest.fixture
def world_517(tmp_path):
    text = CONTRACT_WORLD.read_text(encoding="utf-8")
    assert "mtu = 247" in text
    path = tmp_path / "contract517.toml"
    path.write_text(text.replace("mtu = 247", "mtu = 517"), encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["without-response", "mtu-with-response"])
@pytest.mark.parametrize("name", sorted(BACKENDS))
async def test_64k_chunked_write_at_mtu_517(tmp_path, world_517, name, mode):
    async with BACKENDS[name](world_517) as but:
        backend = but.backend
        backend.start = backend.stop = _noop  # the fixture starts and stops it
        Borrowed.backend = backend
        toml = (
            'backend = "borrowed"\nplugins = ["chunking"]\n'
            '[server]\nnotification_buffer = 512\nwrite_policy = "open"\n'
        )
        if mode == "mtu-with-response":
            toml += '[chunking]\nwith_response = "mtu"\n'
        loaded, catalog = load(write_config(tmp_path, toml), extra_plugins={"b": Borrowed})
        app = BleApp.create(loaded, catalog)
        async with app:
            await app.scan(0.5, ScanFilter())
            conn, _ = await app.connect(SENSOR, 10.0)
            assert conn.mtu == 517
            sub, _ = await app.subscribe(SENSOR, TX)
            data = bytes(i * 7 % 251 for i in range(64 * 1024))
            response = "false" if mode == "without-response" else "true"
            outcome = await app.write(SENSOR, RX, data, response)
            assert outcome.nbytes == len(data) and outcome.chunks == 128
            got: list[bytes] = []
            while sum(map(len, got)) < len(data):
                _, items = await app.notifications(SENSOR, TX, 10_000, 10.0)
                assert items, f"{sum(map(len, got))} of {len(data)} bytes echoed"
                got.extend(value for _, value in items)
            assert max(map(len, got)) == 512
            assert b"".join(got) == data
            assert sub.dropped == 0
