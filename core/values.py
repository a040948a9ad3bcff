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
from typing import Any

from .errors import InvalidInput
from .sig import BASE_SUFFIX

MAX_ATTRIBUTE_LEN = 512
#: The most one tool call may send; plugins (chunking) may split it into many BLE writes.
MAX_WRITE_LEN = 64 * 1024
#: The longest address, UUID or handle reference accepted (a 128-bit UUID in braces with a
#: ``urn:uuid:`` prefix is 47 characters); anything longer is refused before it is parsed.
MAX_REF_LEN = 64
#: The longest text a value to write may take: 64 KiB as hex with a separator per byte.
MAX_VALUE_TEXT = 4 * MAX_WRITE_LEN
#: A device name is at most 248 octets (Core spec Vol 3, Part C, 12.1).
MAX_NAME_LEN = 248

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")
_HEX_SHORT = re.compile(r"^(?:0x)?([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8})$")
_HANDLE = re.compile(r"^(?:handle:|#)\s*(0x[0-9A-Fa-f]{1,8}|[0-9]{1,10})$", re.IGNORECASE)
_HANDLE_LIKE = re.compile(r"^(?:handle:|#)", re.IGNORECASE)


def shown(text: str, limit: int = 40) -> str:
    """``text`` as an error message may quote it: short, and printable as UTF-8 (a lone
    surrogate becomes ``\\udc80``)."""
    cut = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{cut}... ({len(text)} characters)" if len(text) > limit else cut


def shown_number(number: float) -> str:
    """A number as an error message may quote it: a huge integer by its size, not its digits."""
    if isinstance(number, int) and number.bit_length() > 64:
        return f"a {number.bit_length()}-bit number"
    return shown(str(number))


def _bounded(text: str, what: str, example: str, limit: int = MAX_REF_LEN) -> str:
    if len(text) > limit:
        raise InvalidInput(
            f"{what[0].upper()}{what[1:]} '{shown(text)}' is too long to be one "
            f"(at most {limit} characters)",
            f"give it without padding, e.g. {example}",
        )
    return text.strip()


def parse_address(text: str) -> str:
    """A MAC address (``AA:BB:CC:DD:EE:FF``, any case, ``-`` allowed) or a macOS device UUID.
    Returns the canonical form: upper-case MAC with colons, lower-case UUID."""
    return _canonical_address(_bounded(text, "the address", "'C4:7C:8D:6A:12:01'"))


@functools.lru_cache(maxsize=1024)  # keys are at most MAX_REF_LEN characters: bounded memory
def _canonical_address(value: str) -> str:
    if _MAC.match(value):
        return value.replace("-", ":").upper()
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        pass
    raise InvalidInput(
        f"'{shown(value)}' is not a Bluetooth address",
        "use the address exactly as ble_scan or ble_devices lists it, "
        "e.g. 'C4:7C:8D:6A:12:01' (or a device UUID on macOS)",
    )


def parse_uuid(text: str) -> str:
    """A 16-bit (``2a19``, ``0x2A19``), 32-bit or 128-bit UUID → full lowercase 128-bit string."""
    value = _bounded(text, "the UUID", "'2a19'").lower()
    short = _HEX_SHORT.match(value)
    if short:
        digits = short.group(1)
        return f"{digits:0>8}{BASE_SUFFIX}"
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise InvalidInput(
            f"'{shown(text)}' is not a UUID",
            "give a 16-bit UUID like '2a19', or a full UUID like "
            "'6e400001-b5a3-f393-e0a9-e50e24dcca9e'",
        ) from None


def parse_handle(text: str | int) -> int | None:
    """An attribute handle given as an integer, ``'handle:14'``, ``'#14'``, ``'#0014'`` or
    ``'#0x0e'``; None if ``text`` is not in handle form (it may then be a UUID)."""
    if isinstance(text, int):
        if not 1 <= text <= 0xFFFF:
            raise InvalidInput(
                f"handle {shown_number(text)} is out of range", "attribute handles are 1..65535"
            )
        return text
    value = _bounded(text, "the attribute reference", "'2a19' or '#14'")
    match = _HANDLE.match(value)
    if not match:
        if _HANDLE_LIKE.match(value):
            raise InvalidInput(
                f"'{shown(value)}' is not a handle",
                "write a handle as '#14', '#0x000e' or 'handle:14' (decimal or 0x hex)",
            )
        return None
    digits = match.group(1)
    number = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
    if not 1 <= number <= 0xFFFF:
        raise InvalidInput(f"handle {number} is out of range", "attribute handles are 1..65535")
    return number


def parse_name_filter(text: str | None) -> str | None:
    """A scan's name filter: at most a device name's length."""
    if text is not None and len(text) > MAX_NAME_LEN:
        raise InvalidInput(
            f"The name filter '{shown(text)}' is longer than any device name "
            f"({MAX_NAME_LEN} bytes at most)",
            "give part of the name, e.g. 'Polar'",
        )
    return text


def parse_value(text: str, encoding: str) -> bytes:
    """Decode a value to write. ``encoding`` is ``hex``, ``utf8`` or ``base64``."""
    if len(text) > MAX_VALUE_TEXT:
        from .errors import ValueTooLong

        raise ValueTooLong(
            f"The value is {len(text)} characters; one call sends at most {MAX_WRITE_LEN} bytes",
            "split it over several calls",
        )
    if encoding == "hex":
        cleaned = re.sub(r"[\s:_-]", "", text)
        if cleaned.lower().startswith("0x"):
            cleaned = cleaned[2:]
        bad = next((ch for ch in cleaned if ch not in "0123456789abcdefABCDEF"), None)
        if bad is not None:  # checked first: 'high_alert' is not hex, whatever its length
            raise InvalidInput(
                f"value '{shown(text)}' is not hex ('{shown(bad)}' is not a hex digit)",
                "use only 0-9 and a-f; for a typed value send an object such as "
                '{"value": "high_alert"}; for text, encoding=\'utf8\'',
            )
        if len(cleaned) % 2:
            raise InvalidInput(
                f"hex value '{shown(text)}' has an odd number of digits",
                "give two hex digits per byte, e.g. '01ff' or '01 ff'",
            )
        data = bytes.fromhex(cleaned)
    elif encoding == "utf8":
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate (half of a UTF-16 pair)
            raise InvalidInput(
                f"The text has a character UTF-8 cannot encode at position {exc.start} "
                f"('{shown(text[exc.start : exc.end])}', a lone surrogate)",
                "send valid Unicode text, or the bytes with encoding='hex'",
            ) from None
    elif encoding == "base64":
        try:
            data = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"'{shown(text)}' is not valid base64",
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


#: Bounds on a typed value (``ble_write`` with ``value`` as an object), checked before it is
#: looked at: a SIG characteristic's fields are a handful of numbers, names and dates, nested
#: at most twice (Local Time Information), in at most 512 bytes.
MAX_TYPED_ITEMS = 64
MAX_TYPED_DEPTH = 4
MAX_TYPED_TEXT = 1024


def check_typed(value: dict[str, Any]) -> None:
    """Refuse a typed value larger than any characteristic's: too many items, too deep, too
    much text, or an integer wider than 64 bits. Walks without recursion."""
    items, text = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        items += 1
        if items > MAX_TYPED_ITEMS or depth > MAX_TYPED_DEPTH:
            raise InvalidInput(
                f"The typed value has more than {MAX_TYPED_ITEMS} items or is nested deeper "
                f"than {MAX_TYPED_DEPTH} levels; no characteristic takes that much",
                "give the characteristic's fields (the error for a wrong shape lists them), "
                "or the bytes as hex",
            )
        if isinstance(node, dict):
            text += sum(len(key) for key in node)
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            text += len(node)
        elif isinstance(node, int) and node.bit_length() > 64:
            raise InvalidInput(
                f"The typed value holds {shown_number(node)}; no field is wider than 64 bits",
                "check the number",
            )
        if text > MAX_TYPED_TEXT:
            raise InvalidInput(
                f"The typed value holds more than {MAX_TYPED_TEXT} characters of names and "
                "text; no characteristic takes that much",
                "send long text with encoding='utf8', or the bytes as hex",
            )
