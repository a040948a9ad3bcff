"""The server side of the ESPHome native API's framing, for the fake Bluetooth proxy.

Messages are aioesphomeapi's own protobuf classes; their type numbers are aioesphomeapi's
``MESSAGE_TYPE_TO_PROTO`` (the ids of ESPHome's api.proto). Two framings exist:

- plaintext: ``0x00``, varint payload length, varint message type, protobuf payload;
- Noise (``Noise_NNpsk0_25519_ChaChaPoly_SHA256`` with the device's 32-byte pre-shared key and
  the prologue ``b"NoiseAPIInit\\x00\\x00"``): every frame is ``0x01``, 16-bit big-endian length,
  body. The client opens with an empty frame and a frame holding ``0x00`` + its handshake
  message; the server answers with its hello (``0x01``, name, NUL, MAC, NUL) and ``0x00`` + its
  handshake message, or ``0x01`` + a reason when the handshake fails. After that each body is
  encrypted ``type (16 bit) | length (16 bit) | protobuf``.

The ``noiseprotocol`` package plays the responder here, aioesphomeapi the initiator.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO
from noise.connection import NoiseConnection

PROTOCOL = b"Noise_NNpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE = b"NoiseAPIInit\x00\x00"
MESSAGE_ID = {cls: number for number, cls in MESSAGE_TYPE_TO_PROTO.items()}


class HandshakeFailed(Exception):
    """The client's key or framing did not match ours; the connection was answered and closed."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


async def _read_varint(reader: asyncio.StreamReader) -> int:
    result = shift = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result
        shift += 7
        if shift > 28:
            raise HandshakeFailed("varint longer than 4 bytes")


class Channel:
    """One accepted API connection: ``receive()`` the next message, ``send(message)``."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, noise: Any = None
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.noise = noise
        #: The plaintext preamble of the first frame was read by ``accept``.
        self._preamble_read = noise is None

    @classmethod
    async def accept(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        psk: str | None,
        name: str,
        mac: str,
    ) -> Channel:
        """Read the client's first byte and do what an ESPHome device with (or without) an
        encryption key does with it."""
        first = (await reader.readexactly(1))[0]
        if psk is None:
            if first != 0x00:
                # A plaintext device answers a Noise hello with a plaintext frame; the client
                # reports "the device is using plaintext protocol".
                writer.write(b"\x00\x00\x07")
                await writer.drain()
                raise HandshakeFailed("Noise hello to a plaintext device")
            return cls(reader, writer)
        if first != 0x01:
            # An encrypting device answers plaintext with a Noise frame: the client reports
            # "connection requires encryption".
            _frame(writer, b"\x01Bad indicator byte")
            await writer.drain()
            raise HandshakeFailed("plaintext hello to an encrypting device")
        await _read_frame_rest(reader)  # the empty client hello
        handshake = await _read_frame(reader)
        _frame(writer, b"\x01" + name.encode() + b"\x00" + mac.encode() + b"\x00")
        proto = NoiseConnection.from_name(PROTOCOL)
        proto.set_as_responder()
        proto.set_psks(base64.b64decode(psk))
        proto.set_prologue(PROLOGUE)
        proto.start_handshake()
        try:
            if handshake[:1] != b"\x00":
                raise ValueError("handshake frame without its 0x00 marker")
            proto.read_message(handshake[1:])
        except Exception:
            _frame(writer, b"\x01Handshake MAC failure")
            await writer.drain()
            raise HandshakeFailed("the client's key does not match") from None
        _frame(writer, b"\x00" + proto.write_message())
        await writer.drain()
        return cls(reader, writer, proto)

    async def receive(self) -> Any:
        """The next message as an aioesphomeapi protobuf object (None for an unknown type)."""
        if self.noise is None:
            preamble_read, self._preamble_read = self._preamble_read, False
            if not preamble_read and (await self.reader.readexactly(1))[0] != 0x00:
                raise HandshakeFailed("frame without the plaintext preamble")
            length = await _read_varint(self.reader)
            number = await _read_varint(self.reader)
            payload = await self.reader.readexactly(length) if length else b""
        else:
            body = self.noise.decrypt(await _read_frame(self.reader))
            number = int.from_bytes(body[:2], "big")
            payload = body[4 : 4 + int.from_bytes(body[2:4], "big")]
        cls = MESSAGE_TYPE_TO_PROTO.get(number)
        if cls is None:
            return None
        message = cls()
        message.ParseFromString(payload)
        return message

    def send(self, message: Any) -> None:
        number = MESSAGE_ID[type(message)]
        payload = message.SerializeToString()
        if self.noise is None:
            self.writer.write(b"\x00" + _varint(len(payload)) + _varint(number) + payload)
            return
        body = number.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload
        _frame(self.writer, self.noise.encrypt(body))

    def close(self) -> None:
        self.writer.close()


def _frame(writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(b"\x01" + len(body).to_bytes(2, "big") + body)


async def _read_frame_rest(reader: asyncio.StreamReader) -> bytes:
    """A Noise frame whose 0x01 marker was already read."""
    header = await reader.readexactly(2)
    return await reader.readexactly(int.from_bytes(header, "big"))


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    if (await reader.readexactly(1))[0] != 0x01:
        raise HandshakeFailed("frame without the Noise marker")
    return await _read_frame_rest(reader)
