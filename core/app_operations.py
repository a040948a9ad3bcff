"""BleApp's operations: one backend call under its deadline with the retries plugins ask for,
and the reads, writes and descriptor operations built on it."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .deadlines import RadioLostDuringCall, bounded
from .errors import BleError, BleTimeout, InvalidInput, NotPermitted, ValueTooLong
from .gatt import label, note_description
from .models import GattCharacteristic, GattDescriptor
from .plans import ATT_REQUESTS, Operation, OperationKind, WritePlan
from .policy import CCCD, WriteAttempt
from .values import MAX_ATTRIBUTE_LEN, check_typed, parse_address, parse_value

if TYPE_CHECKING:
    from .app import BleApp
    from .app_links import Connection

log = logging.getLogger("mcp_ble")


T = TypeVar("T")


R = TypeVar("R")


@dataclass
class ReadOutcome:
    """What a read did; ``address`` is the canonical address it ran on."""

    address: str
    characteristic: GattCharacteristic
    data: bytes


@dataclass
class WriteOutcome:
    address: str
    characteristic: GattCharacteristic
    nbytes: int
    response: bool
    chunks: int
    notes: list[str]


@dataclass
class DescriptorOutcome:
    """What a descriptor read or write did; ``data`` is the value read or written."""

    address: str
    descriptor: GattDescriptor
    characteristic: GattCharacteristic
    data: bytes


def write_attempt(char: GattCharacteristic, plan: WritePlan) -> WriteAttempt:
    return WriteAttempt(
        "characteristic",
        plan.address,
        b"".join(plan.chunks),
        char.uuid,
        char.handle,
        chunks=len(plan.chunks),
        names=(char.name, None),
    )


def _holds_link(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """The whole operation (discovery, checks, I/O) holds the link, not just its radio calls."""

    @functools.wraps(method)
    async def wrapper(self: BleApp, address: str, *args: Any, **kwargs: Any) -> R:
        try:
            canonical = parse_address(address)
        except BleError:
            return await method(self, address, *args, **kwargs)  # the method reports it
        with self._holding(canonical):
            return await method(self, address, *args, **kwargs)

    return wrapper


class Operations:
    """Backend calls as operations; reads, writes, descriptors (a BleApp mixin)."""

    def _took(self: BleApp, op: Operation) -> float:
        """How long ``op`` has run, on the backend's clock (like scan durations)."""
        return self.now() - op.began if op.began is not None else 0.0

    def _finished(self: BleApp, op: Operation, nbytes: int, error: BleError | None) -> None:
        try:
            self.hook.mcp_ble_operation_finished(
                operation=op, duration_s=self._took(op), nbytes=nbytes, error=error
            )
        except Exception:
            log.exception("plugin hook mcp_ble_operation_finished failed")

    async def _run(
        self: BleApp,
        op: Operation,
        call: Callable[[], Awaitable[T]],
        nbytes: int | Callable[[T], int] = 0,
    ) -> tuple[T, int]:
        """Run one backend call under the operation's deadline, retrying as plugins decide.

        ``nbytes`` is the payload size, or a function of the result (reads). Returns the result
        and the number of attempts; a final error carries ``attempts`` too."""
        if op.began is None:
            op.began = self.now()
        with self._holding(op.address):
            return await self._attempts(op, call, nbytes)

    async def _attempts(
        self: BleApp,
        op: Operation,
        call: Callable[[], Awaitable[T]],
        nbytes: int | Callable[[T], int],
    ) -> tuple[T, int]:
        attempt = 0
        while True:
            attempt += 1
            op.attempts = attempt
            # With several radios, the health of the radio carrying the link (core/fleet.py).
            health = self.radio.health_for(op.address)
            try:
                if not health.ready:
                    raise health.unavailable()
                remaining = op.remaining()
                if remaining <= 0:
                    raise TimeoutError
                result = await bounded(call, remaining, health.wait_lost(), self.abandoned, op.kind)
            except TimeoutError:
                error: BleError = self._timeout(op)
            except RadioLostDuringCall:
                error = health.unavailable()
            except BleError as exc:
                error = exc
            except Exception as exc:  # a backend bug must still become a readable error
                log.exception("backend %s failed during %s", self.backend_name, op.kind)
                error = BleError(
                    f"The {self.backend_name} backend failed during {op.kind.replace('_', ' ')}"
                    f" on {op.address}: {type(exc).__name__}: {exc}",
                    "retry; if it persists run 'mcp-ble doctor' and check the server log",
                )
            else:
                self._on_radio(op)
                self._finished(op, nbytes(result) if callable(nbytes) else nbytes, None)
                return result, attempt
            self._on_radio(op)
            if isinstance(error, BleTimeout) and op.kind in ATT_REQUESTS:
                error = self._close_dead_link(op, error)
            delay = self.hook.mcp_ble_retry_delay(operation=op, error=error, attempt=attempt)
            if delay is None or time.monotonic() + delay >= op.deadline:
                error.attempts = attempt
                self._finished(op, 0, error)
                raise error
            log.info("retrying %s on %s in %.2fs after: %s", op.kind, op.address, delay, error)
            await self.radio.sleep(delay)

    def _on_radio(self: BleApp, op: Operation) -> None:
        """With several radios: the radio the attempt ran on, and whether another radio could
        take the next attempt (the retry plugin reads both)."""
        fleet = self.fleet
        if fleet is not None:
            op.radio = fleet.radio_of(op.address) or fleet.last_radio.get(op.address, "")
            op.other_radio = op.kind == "connect" and fleet.more_radios(op.address)

    @contextlib.contextmanager
    def _holding(self: BleApp, address: str) -> Iterator[None]:
        """Mark a link as in use for the duration (the pool never releases it meanwhile)."""
        in_flight = self.in_flight
        in_flight[address] = in_flight.get(address, 0) + 1
        try:
            yield
        finally:
            if in_flight[address] <= 1:
                del in_flight[address]
            else:
                in_flight[address] -= 1

    def _timeout(self: BleApp, op: Operation) -> BleTimeout:
        took = time.monotonic() - op.started
        if op.kind == "connect":
            return BleTimeout(
                f"Connecting to {op.address} timed out after {took:.1f} s",
                "the device may be out of range or no longer advertising: run ble_scan to check "
                "it is still there, or pass a larger timeout_s",
            )
        return BleTimeout(
            f"The {op.kind.replace('_', ' ')} on {op.address} timed out after {took:.1f} s",
            "the device may be busy or out of range; check ble_connections and try again",
        )

    def _check_radio(self: BleApp, address: str | None = None) -> None:
        health = self.radio.health if address is None else self.radio.health_for(address)
        if not health.ready:
            raise health.unavailable()

    def _deadline(self: BleApp) -> float:
        return time.monotonic() + self.settings.server.operation_timeout_s

    @_holds_link
    async def read(self: BleApp, address: str, ref: str | int) -> ReadOutcome:
        char = await self.characteristic(address, ref)
        conn = self.connection(address)
        if "read" not in char.properties:
            raise NotPermitted(
                f"Characteristic {label(char.uuid, char.name)} (handle {char.handle}) cannot "
                f"be read; its properties are: {', '.join(char.properties) or 'none'}",
                "use ble_subscribe for notify/indicate characteristics",
            )
        op = Operation("read", conn.address, self._deadline(), char.handle)
        data, _ = await self._run(op, lambda: self.radio.read(conn.address, char.handle), len)
        return ReadOutcome(conn.address, char, data)

    @_holds_link
    async def write(
        self: BleApp,
        address: str,
        ref: str | int,
        data: bytes,
        response: Literal["auto", "true", "false"] | bool = "auto",
    ) -> WriteOutcome:
        """Write a characteristic: plan hooks first, then the write policy on exactly what will
        be sent (core/policy.py), then the I/O."""
        conn, char, plan, with_response = await self._plan_write(address, ref, data, response)
        kind: OperationKind = "write" if with_response else "write_without_response"
        async with self.guard.authorized(write_attempt(char, plan)):
            for chunk in plan.chunks:
                op = Operation(kind, conn.address, self._deadline(), char.handle)
                await self._run(
                    op,
                    self._writer(conn.address, char.handle, chunk, with_response),
                    nbytes=len(chunk),
                )
        return WriteOutcome(
            conn.address, char, len(data), with_response, len(plan.chunks), plan.notes
        )

    @_holds_link
    async def value_bytes(
        self: BleApp, address: str, ref: str | int, value: str | dict[str, Any], encoding: str
    ) -> bytes:
        """The bytes a write sends: ``value`` as text in ``encoding``, or a typed value (an
        object of fields, bounded first) encoded for the characteristic's UUID by the decoder
        plugins (``mcp_ble_encode_value``)."""
        if isinstance(value, str):
            return parse_value(value, encoding)
        if not isinstance(value, dict):
            raise InvalidInput(
                f"The value is {type(value).__name__}, not text or an object",
                'give hex text, or a typed value such as {"value": 21.5}',
            )
        check_typed(value)
        char = await self.characteristic(address, ref)
        data = self.codec.encode(char.uuid, value)
        if data is None:
            raise InvalidInput(
                f"Typed values are not known for characteristic {label(char.uuid)}: no decoder "
                "plugin encodes it",
                "send the bytes as a hex string",
            )
        return data

    @_holds_link
    async def preview_write(
        self: BleApp,
        address: str,
        ref: str | int,
        data: bytes,
        response: Literal["auto", "true", "false"] | bool = "auto",
    ) -> WriteAttempt:
        """What :meth:`write` would send (plan hooks included), without sending it: the
        question a person is asked before a write."""
        _, char, plan, _ = await self._plan_write(address, ref, data, response)
        return write_attempt(char, plan)

    async def _plan_write(
        self: BleApp,
        address: str,
        ref: str | int,
        data: bytes,
        response: Literal["auto", "true", "false"] | bool,
    ) -> tuple[Connection, GattCharacteristic, WritePlan, bool]:
        char = await self.characteristic(address, ref)
        conn = self.connection(address)
        props = char.properties
        with_response = self._choose_response(char, response)
        if with_response and "write" not in props:
            raise NotPermitted(
                f"Characteristic {label(char.uuid, char.name)} (handle {char.handle}) does not "
                f"accept write with response; its properties are: {', '.join(props) or 'none'}",
                "pass response=false"
                if "write-without-response" in props
                else "this characteristic is not writable",
            )
        if not with_response and "write-without-response" not in props:
            raise NotPermitted(
                f"Characteristic {label(char.uuid, char.name)} (handle {char.handle}) does not "
                f"accept write without response; its properties are: {', '.join(props) or 'none'}",
                "pass response=true" if "write" in props else "this characteristic is not writable",
            )
        plan = WritePlan(conn.address, char.handle, data, with_response, conn.mtu)
        await self._event("mcp_ble_write_plan", plan=plan, app=self)
        payload = conn.mtu - 3
        longest = max(map(len, plan.chunks))
        if not with_response and longest > payload:
            raise ValueTooLong(
                f"{longest} bytes do not fit one write without response: the "
                f"negotiated MTU is {conn.mtu}, so at most {payload} bytes per write",
                f"send at most {payload} bytes per call, use response=true for a long write "
                "(up to 512 bytes), or enable the 'chunking' plugin",
            )
        if longest > MAX_ATTRIBUTE_LEN:
            raise ValueTooLong(
                f"The value is {longest} bytes; a BLE attribute holds at most {MAX_ATTRIBUTE_LEN}",
                "enable the 'chunking' plugin to send it as a stream of writes, "
                "or split it over several calls",
            )
        return conn, char, plan, with_response

    def _writer(
        self: BleApp, address: str, handle: int, chunk: bytes, response: bool
    ) -> Callable[[], Awaitable[None]]:
        return lambda: self.radio.write(address, handle, chunk, response)

    @staticmethod
    def _choose_response(
        char: GattCharacteristic, response: Literal["auto", "true", "false"] | bool
    ) -> bool:
        if isinstance(response, bool):
            return response
        if response == "true":
            return True
        if response == "false":
            return False
        if response != "auto":
            raise InvalidInput(
                f"response='{response}' is not valid", "use 'auto', 'true' or 'false'"
            )
        return "write" in char.properties or "write-without-response" not in char.properties

    async def descriptor(
        self: BleApp, address: str, ref: str | int, characteristic: str | int | None = None
    ) -> tuple[GattDescriptor, GattCharacteristic]:
        index = await self.gatt(address)
        conn = self.connection(address)
        char = index.characteristic(characteristic, conn.address) if characteristic else None
        desc = index.descriptor(ref, conn.address, char)
        return desc, index.descriptors[desc.handle][1]

    @_holds_link
    async def read_descriptor(
        self: BleApp, address: str, ref: str | int, characteristic: str | int | None = None
    ) -> DescriptorOutcome:
        desc, char = await self.descriptor(address, ref, characteristic)
        conn = self.connection(address)
        op = Operation("read_descriptor", conn.address, self._deadline(), desc.handle)
        data, _ = await self._run(
            op, lambda: self.radio.read_descriptor(conn.address, desc.handle), len
        )
        note_description(desc, char, data)
        return DescriptorOutcome(conn.address, desc, char, data)

    @_holds_link
    async def write_descriptor(
        self: BleApp,
        address: str,
        ref: str | int,
        data: bytes,
        characteristic: str | int | None = None,
    ) -> DescriptorOutcome:
        attempt = await self.preview_write_descriptor(address, ref, data, characteristic)
        desc, char = await self.descriptor(address, ref, characteristic)
        # Serialized with subscribe and unsubscribe of its characteristic (a CCCD write is one).
        async with self._target_locks.hold((parse_address(address), char.handle)):
            conn = self.connection(address)
            async with self.guard.authorized(attempt):
                op = Operation("write_descriptor", conn.address, self._deadline(), desc.handle)
                await self._run(
                    op,
                    lambda: self.radio.write_descriptor(conn.address, desc.handle, data),
                    nbytes=len(data),
                )
        note_description(desc, char, data)
        return DescriptorOutcome(conn.address, desc, char, data)

    @_holds_link
    async def preview_write_descriptor(
        self: BleApp,
        address: str,
        ref: str | int,
        data: bytes,
        characteristic: str | int | None = None,
    ) -> WriteAttempt:
        """What :meth:`write_descriptor` would send, checked but not sent. A CCCD write counts
        as a write here (kind ``cccd``); only ble_subscribe's own CCCD write is a read."""
        if len(data) > MAX_ATTRIBUTE_LEN:
            raise ValueTooLong(
                f"The value is {len(data)} bytes; a descriptor holds at most {MAX_ATTRIBUTE_LEN}",
                "descriptors are small: check the value",
            )
        desc, char = await self.descriptor(address, ref, characteristic)
        return WriteAttempt(
            "cccd" if desc.uuid == CCCD else "descriptor",
            self.connection(address).address,
            data,
            char.uuid,
            char.handle,
            desc.uuid,
            desc.handle,
            names=(char.name, desc.name),
        )
