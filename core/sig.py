"""Bluetooth SIG numbers the core itself needs: the Bluetooth Base UUID and company names.

Decoding values and naming UUIDs is the decoder plugins' work (the ``decoding`` hooks, and the
built-in ``sig`` plugin); company names come from the bluetooth-numbers package (the company
identifiers of the Bluetooth SIG's Assigned Numbers), never typed by hand here.
"""

from __future__ import annotations

from functools import cache

#: The Bluetooth Base UUID's tail: a 16- or 32-bit UUID is 0000xxxx (or xxxxxxxx) before it
#: (Core spec Vol 3, Part B, §2.5.1).
BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def short_uuid(uuid: str) -> str | None:
    """``'2a19'`` for a SIG-base UUID with a 16-bit value, else None."""
    if uuid.endswith(BASE_SUFFIX) and uuid.startswith("0000"):
        return uuid[4:8]
    return None


@cache
def _companies() -> dict[int, str]:
    # Imported on first use: the package loads its OUI table too (about 0.2 s), which a server
    # that never sees manufacturer data should not pay for at start.
    from bluetooth_numbers import company

    return dict(company)


def company_name(company_id: int) -> str | None:
    """The Bluetooth SIG's name for a company identifier, or None if it is not assigned."""
    return _companies().get(company_id)


def printable_text(data: bytes) -> str | None:
    """The value as text when it is valid UTF-8 made of printable characters."""
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.rstrip("\x00")
    if stripped and all(ch.isprintable() or ch in "\r\n\t" for ch in stripped):
        return stripped
    return None
