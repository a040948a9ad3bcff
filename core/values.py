"""Parsing what agents type: addresses, UUIDs, attribute names and values to write.

Each parser raises :class:`InvalidInput` with the offending text, what the form should be, and an
example, so an agent can correct itself in one step.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import uuid as uuidlib

from .errors import InvalidInput
from .sig import BASE_SUFFIX

MAX_ATTRIBUTE_LEN = 512
#: The most one tool call may send; plugins (chunking) may split it into many BLE writes.
MAX_WRITE_LEN = 64 * 1024

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")
_HEX_SHORT = re.compile(r"^(?:0x)?([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8})$")
_HANDLE = re.compile(r"^(?:handle:|#)\s*(0x[0-9A-Fa-f]+|\d+)$", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> str:
    """A MAC address (``AA:BB:CC:DD:EE:FF``, any case, ``-`` allowed) or a macOS device UUID.
    Returns the canonical form: upper-case MAC with colons, lower-case UUID."""
    value = text.strip()
    if _MAC.match(value):
        return value.replace("-", ":").upper()
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        pass
    raise InvalidInput(
        f"'{text}' is not a Bluetooth address",
        "use the address exactly as ble_scan or ble_devices lists it, "
        "e.g. 'C4:7C:8D:6A:12:01' (or a device UUID on macOS)",
    )


def parse_uuid(text: str) -> str:
    """A 16-bit (``2a19``, ``0x2A19``), 32-bit or 128-bit UUID → full lowercase 128-bit string."""
    value = text.strip().lower()
    short = _HEX_SHORT.match(value)
    if short:
        digits = short.group(1)
        return f"{digits:0>8}{BASE_SUFFIX}"
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise InvalidInput(
            f"'{text}' is not a UUID",
            "give a 16-bit UUID like '2a19', or a full UUID like "
            "'6e400001-b5a3-f393-e0a9-e50e24dcca9e'",
        ) from None


def parse_handle(text: str | int) -> int | None:
    """An attribute handle given as an integer, ``'handle:14'``, ``'#14'`` or ``'#0x0e'``;
    None if ``text`` is not in handle form (it may then be a UUID)."""
    if isinstance(text, int):
        number = text
    else:
        match = _HANDLE.match(text.strip())
        if not match:
            return None
        number = int(match.group(1), 0)
    if not 1 <= number <= 0xFFFF:
        raise InvalidInput(f"handle {number} is out of range", "attribute handles are 1..65535")
    return number


def parse_value(text: str, encoding: str) -> bytes:
    """Decode a value to write. ``encoding`` is ``hex``, ``utf8`` or ``base64``."""
    if encoding == "hex":
        cleaned = re.sub(r"[\s:_-]", "", text)
        if cleaned.lower().startswith("0x"):
            cleaned = cleaned[2:]
        if len(cleaned) % 2:
            raise InvalidInput(
                f"hex value '{text}' has an odd number of digits",
                "give two hex digits per byte, e.g. '01ff' or '01 ff'",
            )
        try:
            data = bytes.fromhex(cleaned)
        except ValueError:
            bad = next(ch for ch in cleaned if ch not in "0123456789abcdefABCDEF")
            raise InvalidInput(
                f"hex value '{text}' contains '{bad}', which is not a hex digit",
                "use only 0-9 and a-f (or encoding='utf8' for text)",
            ) from None
    elif encoding == "utf8":
        data = text.encode("utf-8")
    elif encoding == "base64":
        try:
            data = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"'{text}' is not valid base64",
                "check the padding and alphabet, or use encoding='hex'",
            ) from None
    else:  # the MCP schema restricts this; direct callers get the same clear error
        raise InvalidInput(f"unknown encoding '{encoding}'", "use one of: hex, utf8, base64")
    if len(data) > MAX_WRITE_LEN:
        from .errors import ValueTooLong

        raise ValueTooLong(
            f"The value is {len(data)} bytes; one call sends at most {MAX_WRITE_LEN}",
            "split it over several calls",
        )
    return data
