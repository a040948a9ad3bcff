"""Typed values to bytes for the ``sig`` plugin's ``mcp_ble_encode_value``."""

from __future__ import annotations

from typing import Any


def encode(uuid: str, value: Any) -> bytes | None:
    """The bytes for ``value`` written to characteristic ``uuid``, or None when it cannot be
    encoded here (the caller then asks for hex)."""
    return None
