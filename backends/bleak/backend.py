"""The bleak backend: the system's Bluetooth stack (BlueZ, CoreBluetooth, WinRT) through bleak.

Only bleak's public API (``BleakScanner``, ``BleakClient``) is used, so bleak's platform backends,
or any class passed as ``scanner_backend``/``client_backend`` (the test bed's), do the I/O.
Connections go through bleak-retry-connector's ``establish_connection``: it knows the BlueZ and
ESPHome error strings, reuses a link BlueZ already has and waits for a failed attempt to be torn
down. It makes exactly one attempt (``max_attempts=1``, and a client class that refuses a second
one, since the library retries "transient" errors regardless), so the retry plugin alone decides
whether and when to try again and nothing retries twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from mcp_ble.core.backend import Backend, NotifyCallback, until_deadline
from mcp_ble.core.errors import (
    BackendUnavailable,
    BleError,
    BleTimeout,
    DeviceNotFound,
    GattError,
    NotPermitted,
)
from mcp_ble.core.models import Advertisement, BackendInfo, GattService, ScanFilter
from mcp_ble.core.values import parse_address

from .errors import attempt_error, connect_error, gatt_error, radio_gone, unavailable
from .gatt import BleakGatt, GattLink

CCCD = "00002902-0000-1000-8000-00805f9b34fb"
#: Advertisements buffered between bleak and the core during one scan; beyond this they drop.
SCAN_BUFFER = 4096
#: How long the end of a scan waits for the stack to confirm it stopped scanning.
STOP_GRACE_S = 0.3
#: How long the adapter check after an unexplained link loss may take.
PROBE_S = 2.0
#: bleak reports this write-without-response size until the MTU exchange is known.
DEFAULT_PAYLOAD = 20


@dataclass
class _Link(GattLink):
    #: The core's notification callback per characteristic handle (set by start_notify).
    callbacks: dict[int, NotifyCallback] = field(default_factory=dict)
    notifying: set[int] = field(default_factory=set)
    dropped_notifications: int = 0

    def index(self) -> None:
        # bleak's ``services`` raises until service discovery has run: the index stays empty.
        with contextlib.suppress(Exception):
            super().index()


class _OneAttemptOnly(Exception):
    """Raised instead of a second connect attempt; establish_connection lets it through."""


class _AttemptClient(BleakClient):
    """A BleakClient that makes one connect attempt and records why it failed.

    ``max_attempts=1`` is not enough: bleak-retry-connector still retries errors it considers
    transient (aborted links, missing devices, full slots: up to 9 times). Our retry plugin must be
    the only one to retry, so a second attempt is refused with an exception it does not catch."""

    def __init__(
        self,
        *args: Any,
        attempt_failures: list[tuple[BaseException, float]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._attempt_failures = attempt_failures

    async def connect(self, **kwargs: Any) -> None:
        if self._attempt_failures:
            raise _OneAttemptOnly(time.monotonic())
        try:
            await super().connect(**kwargs)
        except BaseException as exc:
            self._attempt_failures.append((exc, time.monotonic()))
            raise


class BleakBackend(BleakGatt[_Link], Backend):
    """Real adapters on Linux (BlueZ), macOS (CoreBluetooth) and Windows (WinRT)."""

    def __init__(
        self,
        adapter: str | None = None,
        *,
        scanning_mode: str = "active",
        pair_on_connect: bool = False,
        start_timeout_s: float = 5.0,
        mtu_wait_s: float = 1.0,
        scanner_backend: type | None = None,
        client_backend: type | None = None,
    ) -> None:
        self.adapter = adapter
        self.scanning_mode = scanning_mode
        self.pair_on_connect = pair_on_connect
        self.start_timeout_s = start_timeout_s
        self.mtu_wait_s = mtu_wait_s
        # bleak's backend= arguments; not user settings: tests put the test bed's classes here.
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self._devices: dict[str, BLEDevice] = {}
        self._links: dict[str, _Link] = {}
        self.dropped_advertisements = 0
        self._background: set[asyncio.Task[None]] = set()

    def info(self) -> BackendInfo:
        import bleak

        details = {
            "adapter": self.adapter or "the system default",
            "platform": sys.platform,
            "bleak": getattr(bleak, "__version__", "") or _version("bleak"),
        }
        if self.scanner_backend is not None:
            details["bleak_backend"] = self.scanner_backend.__name__
        if self.dropped_advertisements:
            details["dropped_advertisements"] = str(self.dropped_advertisements)
        return BackendInfo("bleak", simulated=False, details=details)

    def _platform_args(self) -> dict[str, Any]:
        return {"bluez": {"adapter": self.adapter}} if self.adapter else {}

    def _scanner(
        self, callback: Callable[..., None] | None, service_uuids: list[str] | None
    ) -> Any:
        return BleakScanner(
            callback,
            service_uuids,
            self.scanning_mode,  # type: ignore[arg-type]
            backend=self.scanner_backend,
            **self._platform_args(),
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check that an adapter answers: start and stop a scan within ``start_timeout_s``."""
        if self.adapter and not sys.platform.startswith("linux") and self.scanner_backend is None:
            raise BackendUnavailable(
                f"adapter = '{self.adapter}' names a BlueZ adapter, which exists only on Linux",
                "remove adapter from [backends.bleak]: macOS and Windows use their one adapter",
            )
        try:
            async with asyncio.timeout(self.start_timeout_s):
                scanner = self._scanner(None, None)
                await scanner.start()
                await scanner.stop()
        except TimeoutError:
            raise BackendUnavailable(
                f"The bleak backend cannot start: the Bluetooth stack did not answer within "
                f"{self.start_timeout_s:g} s",
                "check that Bluetooth is on and not stuck (Linux: systemctl status bluetooth); "
                "run 'mcp-ble doctor'",
            ) from None
        except Exception as exc:
            reason = unavailable(exc, self.adapter)
            raise BackendUnavailable(
                f"The bleak backend cannot start: {reason.what[:1].lower()}{reason.what[1:]}",
                reason.hint,
            ) from None

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        for address in list(self._links):
            with contextlib.suppress(Exception):
                await self.disconnect(address)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _gone(self, exc: BaseException) -> BleError | None:
        """If ``exc`` means the adapter or BlueZ is gone, report the radio lost (the core ends
        every link and the backend re-acquires it) and return the error to raise."""
        reason = radio_gone(exc)
        if reason is None:
            return None
        links, self._links = self._links, {}
        for link in links.values():
            self._spawn(self._quietly_disconnect(link))
        self.radio_lost(reason)
        return self.health.unavailable()

    def _failed(self, exc: BaseException, address: str, operation: str) -> BleError:
        return self._gone(exc) or gatt_error(exc, address, operation)

    @staticmethod
    async def _quietly_disconnect(link: _Link) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(PROBE_S):
                await link.client.disconnect()

    # ------------------------------------------------------------------ discovery

    def _advertisement(self, device: BLEDevice, data: AdvertisementData) -> Advertisement:
        address = parse_address(device.address)
        self._devices[address] = device
        name = data.local_name
        if name is None and device.name and device.name.replace("-", ":") != device.address:
            name = device.name  # BlueZ names unnamed devices after their address
        return Advertisement(
            address=address,
            rssi=max(-127, min(20, data.rssi)),
            name=name,
            tx_power=data.tx_power,
            service_uuids=tuple(data.service_uuids),
            manufacturer_data=dict(data.manufacturer_data),
            service_data=dict(data.service_data),
        )

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        """bleak calls the detection callback on the loop; it only enqueues (bounded)."""
        queue: asyncio.Queue[Advertisement] = asyncio.Queue(SCAN_BUFFER)

        def on_detection(device: BLEDevice, data: AdvertisementData) -> None:
            try:
                queue.put_nowait(self._advertisement(device, data))
            except asyncio.QueueFull:
                self.dropped_advertisements += 1

        uuids = [scan_filter.service_uuid] if scan_filter.service_uuid else None
        scanner = self._scanner(on_detection, uuids)
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        try:
            async with asyncio.timeout(duration_s):
                await scanner.start()
        except TimeoutError:
            raise BleTimeout(
                f"The Bluetooth stack did not start scanning within {duration_s:g} s",
                "the adapter may be stuck (Linux: sudo systemctl restart bluetooth)",
            ) from None
        except Exception as exc:
            raise self._failed(exc, "the adapter", "scan") from None
        try:
            async for adv in until_deadline(queue, max(end - loop.time(), 0.0)):
                yield adv
        finally:
            # Not past the scan's end: a stack that does not answer gets the stop in the
            # background.
            stopping = loop.create_task(self._stop_scanner(scanner))
            self._background.add(stopping)
            stopping.add_done_callback(self._background.discard)
            await asyncio.wait({stopping}, timeout=STOP_GRACE_S)

    @staticmethod
    async def _stop_scanner(scanner: Any) -> None:
        with contextlib.suppress(Exception):
            await scanner.stop()

    # ------------------------------------------------------------------ connection

    async def connect(self, address: str, timeout_s: float) -> None:
        from bleak_retry_connector import close_stale_connections, establish_connection

        link = self._links.get(address)
        if link is not None and link.client.is_connected:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        device = self._devices.get(address) or await self._find(address, timeout_s)
        client: Any = None
        failures: list[tuple[BaseException, float]] = []  # (why, when) of our one attempt
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                # A link BlueZ keeps to this device through another adapter is stale.
                await close_stale_connections(device, only_other_adapters=True)
                client = await establish_connection(
                    _AttemptClient,
                    device,
                    address,
                    attempt_failures=failures,
                    disconnected_callback=lambda c: self._on_disconnected(address, c),
                    max_attempts=1,  # the core's retry plugin owns retries and their backoff
                    backend=self.client_backend,
                    timeout=max(deadline - loop.time(), 0.001),
                    pair=self.pair_on_connect,
                    **self._platform_args(),
                )
        except _OneAttemptOnly as refused:
            failure, failed_at = failures[0]
            error = self._gone(failure) or attempt_error(failure, address, timeout_s)
            # the time bleak-retry-connector spent waiting for the failed link to go down
            error.waited_s = max(0.0, refused.args[0] - failed_at)
            raise error from None
        except TimeoutError:
            # After a failed attempt establish_connection waits (up to 4 s) for the stack to
            # tear the link down; if our deadline ends that wait, report the failure itself.
            if failures:
                raise attempt_error(failures[0][0], address, timeout_s) from None
            raise connect_error(TimeoutError(), address, timeout_s) from None
        except Exception as exc:
            raise self._gone(exc) or connect_error(exc, address, timeout_s) from None
        link = _Link(client)
        self._links[address] = link
        await self._wait_for_mtu(link, deadline - loop.time())

    async def _find(self, address: str, timeout_s: float) -> BLEDevice:
        try:
            device = await BleakScanner.find_device_by_address(
                address,
                timeout=min(timeout_s, 10.0),
                backend=self.scanner_backend,  # type: ignore[arg-type]  # None: the platform's
                **self._platform_args(),
            )
        except Exception as exc:
            raise self._failed(exc, address, "search") from None
        if device is None:
            raise DeviceNotFound(
                f"{address} did not advertise within {min(timeout_s, 10.0):.0f} s",
                "check that it is powered and in range, then scan and connect again",
            )
        self._devices[address] = device
        return device

    def _payload(self, link: _Link) -> int | None:
        """The write-without-response size bleak reports (it re-reads the platform's value)."""
        try:
            for service in link.client.services:
                for char in service.characteristics:
                    return int(char.max_write_without_response_size)
        except Exception:
            return None
        return None

    async def _wait_for_mtu(self, link: _Link, budget_s: float) -> None:
        """bleak may report 20 bytes until the MTU exchange finishes: give it a moment."""
        loop = asyncio.get_running_loop()
        end = loop.time() + max(0.0, min(self.mtu_wait_s, budget_s))
        # bleak has no event for the MTU change: poll the value it re-reads from the platform.
        while (self._payload(link) or 0) <= DEFAULT_PAYLOAD and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    def _on_disconnected(self, address: str, client: Any) -> None:
        """bleak calls this for every disconnect; ``disconnect`` forgets the link first, so a
        link still registered here was dropped by the device or the radio."""
        link = self._links.get(address)
        if link is None or link.client is not client:
            return
        del self._links[address]
        self._spawn(self._explain_drop(address))

    async def _explain_drop(self, address: str) -> None:
        """bleak gives no reason for a lost link: check whether the adapter itself went (start
        and stop a scan, as ``start`` does). If it did, the radio is lost, which ends every link
        with that reason; if not, the device or the air dropped this one."""
        if self.health.ready:
            try:
                async with asyncio.timeout(PROBE_S):
                    scanner = self._scanner(None, None)
                    await scanner.start()
                    await scanner.stop()
            except Exception as exc:
                if self._gone(exc) is not None:
                    return
        if self.health.ready:
            self.on_disconnect(
                address, "the device or the radio ended the link (bleak gives no reason)"
            )

    def mtu(self, address: str) -> int:
        link = self._linked(address)
        payload = self._payload(link)
        if payload is None:
            return max(23, min(517, int(link.client.mtu_size)))
        return max(23, min(517, payload + 3))

    async def discover(self, address: str) -> list[GattService]:
        link = self._linked(address)
        try:
            collection = link.client.services
        except Exception as exc:
            raise gatt_error(exc, address, "service discovery") from None
        return link.tree(collection)

    # ------------------------------------------------------------------ transfer

    async def _write_descriptor(self, address: str, link: _Link, desc: Any, data: bytes) -> None:
        if desc.uuid == CCCD:
            await self._write_cccd(address, link, desc.characteristic_handle, data)
        else:
            await super()._write_descriptor(address, link, desc, data)

    async def _write_cccd(self, address: str, link: _Link, handle: int, data: bytes) -> None:
        """bleak (and the OS stacks) refuse raw CCCD writes; enabling or disabling
        notifications is what such a write means, so do that instead."""
        if len(data) != 2:
            raise GattError(0x0D, "descriptor write", "the CCCD holds exactly two bytes")
        if int.from_bytes(data, "little") & 0x03:
            await self._enable(address, link, handle)
        else:
            await self._disable(address, link, handle)

    async def _enable(self, address: str, link: _Link, handle: int) -> None:
        _, char = self._char(address, handle)

        def deliver(_char: Any, data: bytearray) -> None:
            # A plain function: bleak calls it on the loop, with no task per notification.
            callback = link.callbacks.get(handle)
            if callback is None:
                link.dropped_notifications += 1
            else:
                callback(bytes(data))

        try:
            if handle in link.notifying:
                await link.client.stop_notify(char)
                link.notifying.discard(handle)
            await link.client.start_notify(char, deliver)
        except Exception as exc:
            raise self._failed(exc, address, "subscription") from None
        link.notifying.add(handle)

    async def _disable(self, address: str, link: _Link, handle: int) -> None:
        _, char = self._char(address, handle)
        if handle not in link.notifying:
            return
        try:
            await link.client.stop_notify(char)
        except Exception as exc:
            raise self._failed(exc, address, "unsubscription") from None
        finally:
            link.notifying.discard(handle)

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        link, _ = self._notifiable(address, handle)
        link.callbacks[handle] = callback
        try:
            await self._enable(address, link, handle)
        except BleError:
            link.callbacks.pop(handle, None)
            raise

    async def stop_notify(self, address: str, handle: int) -> None:
        link = self._linked(address)
        link.callbacks.pop(handle, None)
        await self._disable(address, link, handle)

    async def pair(self, address: str) -> None:
        link = self._linked(address)
        try:
            await link.client.pair()
        except NotImplementedError:
            raise NotPermitted(
                f"bleak cannot start pairing with {address} on this platform",
                "macOS pairs by itself when a protected characteristic is used: read it and "
                "accept the system prompt",
            ) from None
        except Exception as exc:
            raise NotPermitted(
                f"Pairing with {address} failed: {exc}",
                "put the device in pairing mode, or pair from the system's Bluetooth settings",
            ) from None


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
