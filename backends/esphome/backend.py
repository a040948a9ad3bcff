"""The esphome backend: an ESPHome Bluetooth proxy over the native API.

aioesphomeapi's ``APIClient`` holds the API connection (plaintext, or Noise-encrypted with the
proxy's key). bleak-esphome's ``connect_scanner`` turns it into a habluetooth remote scanner plus
the proxy's slot bookkeeping (``ESPHomeBluetoothDevice``), and its ``ESPHomeClient`` (a bleak client
backend) carries each link: connect, service list, reads, writes, notifications. The proxy
negotiates the ATT MTU itself and reports it with the connection; it reports its free connection
slots whenever they change, which :meth:`EsphomeBackend.connection_slots` returns.

Advertisements come from the proxy's raw advertisement batches (the AD structures as received),
decoded here, every one of them: habluetooth's own view drops repeats with unchanged data.

An API connection that ends without our asking (the proxy lost power or network) is a lost radio:
the core ends the links, and :meth:`reacquire` connects again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mcp_ble.core.backend import Backend, NotifyCallback, until_deadline
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleError,
    DeviceNotFound,
    NotPermitted,
    OutOfSlots,
)
from mcp_ble.core.models import Advertisement, BackendInfo, GattService, ScanFilter

from ..bleak.gatt import BleakGatt, GattLink
from ..bumble.advertising import decode
from . import manager
from .errors import connect_error, gatt_error, settings_table, unreachable

#: Advertisements buffered per scan between the proxy and the core; beyond this they drop.
SCAN_BUFFER = 4096
#: How long a connect waits to hear an unknown address advertise through the proxy.
FIND_S = 10.0


class EsphomeBackend(BleakGatt[GattLink], Backend):
    """One ESPHome Bluetooth proxy."""

    def __init__(
        self,
        host: str,
        port: int = 6053,
        *,
        noise_psk: str | None = None,
        password: str | None = None,
        connect_timeout_s: float = 10.0,
        keepalive_s: float = 10.0,
        key_env: str | None = None,
    ) -> None:
        self.host = host
        #: The environment variable the key came from (named in errors; never the key).
        self.key_env = key_env
        self.port = port
        self._psk = noise_psk
        self._password = password
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        #: Why the API connection last closed (aioesphomeapi's error), for the radio-lost reason.
        self._closed: BaseException | None = None
        self._api: Any = None
        self._data: Any = None  # bleak-esphome's ESPHomeClientData
        self._device_info: Any = None
        self._undo: list[Any] = []
        self._links: dict[str, GattLink] = {}
        self._scans: set[asyncio.Queue[Advertisement | None]] = set()
        self._heard: dict[str, asyncio.Event] = {}
        self._manager = False
        self._stopping = False
        self.dropped_advertisements = 0
        #: Whether the proxy confirmed our advertisement subscription (None: it cannot say).
        self._subscribed: bool | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def info(self) -> BackendInfo:
        details = {"proxy": self.where, "encryption": "noise" if self._psk else "none"}
        if self._device_info is not None:
            details["name"] = self._device_info.name
            details["esphome"] = self._device_info.esphome_version
        if (slots := self.connection_slots()) is not None:
            details["slots"] = f"{slots[0]}/{slots[1]} used"
        if self.dropped_advertisements:
            details["dropped_advertisements"] = str(self.dropped_advertisements)
        return BackendInfo("esphome", simulated=False, details=details)

    def connection_slots(self) -> tuple[int, int] | None:
        """(used, limit) as the proxy last reported them; None before its first report."""
        if self._data is None:
            return None
        device = self._data.bluetooth_device
        limit = int(device.ble_connections_limit)
        if not limit:
            return None
        return limit - int(device.ble_connections_free), limit

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from aioesphomeapi import APIClient, BluetoothProxyFeature
        from bleak_esphome import connect_scanner
        from habluetooth import get_manager

        self._stopping = False
        if not self._manager:
            await manager.acquire()
            self._manager = True
        api = APIClient(
            self.host,
            self.port,
            self._password,
            noise_psk=self._psk,
            client_info="mcp-ble",
            keepalive=self.keepalive_s,
        )
        self._closed = None
        api.add_connection_closed_callback(self._on_closed)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await api.connect(on_stop=self._on_api_stop, login=True, log_errors=False)
                info = await api.device_info()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await api.disconnect(force=True)
            # A radio of several is named by the fleet (health.name): its [[radios]] table.
            table = settings_table(self.health.name)
            raise unreachable(exc, self.where, table, self.key_env) from None
        assert api.api_version is not None  # set by the hello exchange
        flags = info.bluetooth_proxy_feature_flags_compat(api.api_version)
        if not flags & BluetoothProxyFeature.RAW_ADVERTISEMENTS:
            await api.disconnect()
            raise BackendUnavailable(
                f"{info.name} at {self.where} is not a Bluetooth proxy that forwards raw "
                "advertisements",
                "add bluetooth_proxy: (active: true) to its ESPHome YAML and update its "
                "firmware to a current ESPHome release",
            )
        self._api, self._device_info = api, info
        self._data = connect_scanner(api, info, available=True)
        scanner = self._data.scanner
        # Firmware that reports its scanner state does so only to the API client holding its
        # one advertisement subscription: until it does, that may be another client.
        has_state = bool(flags & BluetoothProxyFeature.FEATURE_STATE_AND_MODE)
        self._subscribed = False if has_state else None
        self._undo = [
            scanner.async_setup(),
            get_manager().async_register_scanner(scanner),
            api.subscribe_bluetooth_scanner_state(self._on_scanner_state),
            api.subscribe_bluetooth_le_raw_advertisements(self._on_raw),
        ]

    def _on_scanner_state(self, state: Any) -> None:
        self._subscribed = True

    def _not_subscribed(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"The proxy at {self.where} did not take our advertisement subscription: ESPHome's "
            "bluetooth_proxy serves one API client at a time, and another (Home Assistant?) "
            "holds it",
            "give mcp-ble a proxy of its own, or disconnect the other client (the subscription "
            "is retried after 10, 30 and 60 s)",
        )

    def _on_closed(self, event: Any) -> None:
        """aioesphomeapi says why an established connection closed, before ``on_stop``."""
        self._closed = event.error

    async def _on_api_stop(self, expected: bool) -> None:
        """aioesphomeapi calls this when the API connection ends."""
        if self._stopping or self._api is None:
            return
        self._teardown()
        self.radio_lost(self._why())

    def _why(self) -> str:
        from aioesphomeapi.core import PingFailedAPIError

        if isinstance(self._closed, PingFailedAPIError):
            waited = self.keepalive_s * 4.5  # aioesphomeapi's pong timeout
            return (
                f"the ESPHome proxy at {self.where} stopped answering "
                f"(no ping reply in {waited:g} s)"
            )
        return f"the ESPHome proxy at {self.where} closed the API connection"

    def _teardown(self) -> None:
        """Forget the API connection: what connect_scanner's caller must do when it ends."""
        self._links.clear()
        data, self._data, self._api = self._data, None, None
        for undo in reversed(self._undo):
            with contextlib.suppress(Exception):
                undo()
        self._undo = []
        for queue in self._scans:  # scans under way end: nothing more will arrive
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        if data is not None:
            data.bluetooth_device.async_set_unavailable()
            for callback in list(data.disconnect_callbacks):
                with contextlib.suppress(Exception):
                    callback()

    async def stop(self) -> None:
        self._stopping = True
        await self.health.close()  # no re-acquiring once stopped
        api = self._api
        for address in list(self._links):
            with contextlib.suppress(Exception):
                await self.disconnect(address)
        self._teardown()
        if api is not None:
            with contextlib.suppress(Exception):
                await api.disconnect()
        if self._manager:
            self._manager = False
            await manager.release()

    def _require(self) -> Any:
        if self._data is not None:
            return self._data
        if not self.health.ready:
            raise self.health.unavailable()
        raise BackendUnavailable(
            f"The esphome backend is not connected to {self.where}", "start it first"
        )

    # ------------------------------------------------------------------ discovery

    def _on_raw(self, response: Any) -> None:
        """Every raw advertisement batch the proxy sends."""
        from bluetooth_data_tools import int_to_bluetooth_address

        advertisements = response.advertisements
        for i in range(len(advertisements)):  # indexing: iterating the repeated field is slow
            raw = advertisements[i]
            address = int_to_bluetooth_address(raw.address)
            heard = self._heard.pop(address, None)
            if heard is not None:
                heard.set()
            if not self._scans:
                continue
            adv = decode(address, max(-127, min(20, raw.rssi)), bytes(raw.data))
            for queue in self._scans:
                try:
                    queue.put_nowait(adv)
                except asyncio.QueueFull:
                    self.dropped_advertisements += 1

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        """The proxy scans all the time; a scan is a window onto what it forwards."""
        self._require()
        queue: asyncio.Queue[Advertisement | None] = asyncio.Queue(SCAN_BUFFER)
        self._scans.add(queue)
        try:
            async for adv in until_deadline(queue, duration_s):
                if adv is None:  # the API connection ended
                    if not self.health.ready:
                        raise self.health.unavailable()
                    return
                yield adv
        finally:
            self._scans.discard(queue)
        if self._subscribed is False:
            raise self._not_subscribed()

    async def _device(self, address: str, timeout_s: float) -> Any:
        """The BLEDevice the proxy's scanner made for ``address`` (it carries the address
        type and source the connect needs), waiting to hear the device if it was not yet."""
        scanner = self._require().scanner
        found = scanner.get_discovered_device_advertisement_data(address)
        if found is None:
            heard = self._heard.setdefault(address, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(timeout_s, FIND_S)):
                    await heard.wait()
            await asyncio.sleep(0)
            found = scanner.get_discovered_device_advertisement_data(address)
        if found is None:
            raise DeviceNotFound(
                f"The proxy at {self.where} did not hear {address} within "
                f"{min(timeout_s, FIND_S):.0f} s",
                "check that the device is powered and near the proxy, then scan and connect",
            )
        return found[0]

    # ------------------------------------------------------------------ connection

    async def connect(self, address: str, timeout_s: float) -> None:
        from aioesphomeapi import BluetoothProxyFeature

        from .client import ReasonClient

        link = self._links.get(address)
        if link is not None and link.client.is_connected:
            return
        data = self._require()
        flags = data.device_info.bluetooth_proxy_feature_flags_compat(data.api_version)
        if not flags & BluetoothProxyFeature.ACTIVE_CONNECTIONS:
            raise NotPermitted(
                f"The proxy at {self.where} only scans: it cannot connect to devices",
                "set bluetooth_proxy: active: true in its ESPHome YAML",
            )
        slots = self.connection_slots()
        if slots is not None and slots[0] >= slots[1]:
            raise OutOfSlots(
                f"The proxy at {self.where} has no free connection slot ({slots[0]} of "
                f"{slots[1]} in use)",
                "disconnect another device, or raise bluetooth_proxy: connection_slots",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        device = await self._device(address, timeout_s)
        client: Any = None
        client = ReasonClient(
            device,
            client_data=data,
            disconnected_callback=lambda: self._on_disconnected(address, client),
            timeout=max(deadline - loop.time(), 0.001),
        )
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                await client.connect(pair=False, timeout=max(deadline - loop.time(), 0.001))
        except BleError:
            raise
        except Exception as exc:
            if self._data is None:
                raise self.health.unavailable() from None
            if self._subscribed is False:  # the proxy answers the client that holds it
                raise self._not_subscribed() from None
            raise connect_error(exc, address, timeout_s) from None
        self._links[address] = GattLink(client)

    def _on_disconnected(self, address: str, client: Any) -> None:
        """bleak-esphome calls this when the proxy reports the link down; ``disconnect``
        forgets the link first, so a link still registered here was ended by the device, the
        air or the proxy."""
        link = self._links.get(address)
        if link is None or link.client is not client:
            return
        from .client import describe

        del self._links[address]
        why = describe(getattr(client, "down_reason", None))
        self.on_disconnect(address, f"the proxy at {self.where} reported the link down: {why}")

    def mtu(self, address: str) -> int:
        """The MTU the proxy reported when the link came up."""
        return max(23, min(517, int(self._linked(address).client.mtu_size)))

    async def discover(self, address: str) -> list[GattService]:
        link = self._linked(address)
        return link.tree(link.client.services)

    # ------------------------------------------------------------------ transfer

    def _failed(self, exc: BaseException, address: str, operation: str) -> BleError:
        if self._data is None and not self.health.ready:
            return self.health.unavailable()
        return gatt_error(exc, address, operation)

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        """bleak-esphome registers the handle on the proxy, then writes the CCCD itself."""
        link, char = self._notifiable(address, handle)
        try:
            await link.client.stop_notify(char)  # a second subscription replaces the first
            await link.client.start_notify(char, lambda data: callback(bytes(data)))
        except Exception as exc:
            raise self._failed(exc, address, "subscription") from None

    async def stop_notify(self, address: str, handle: int) -> None:
        link, char = self._char(address, handle)
        try:
            await link.client.stop_notify(char)
        except Exception as exc:
            raise self._failed(exc, address, "unsubscription") from None
