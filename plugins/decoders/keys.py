"""Per-device keys of encrypted advertisement formats (BTHome v2 with a key, Xiaomi bindkeys).

Keys come from the plugin's settings section or the environment, keyed by device address::

    [bthome]
    keys = { "54:48:E6:8F:80:A5" = "231d39c1d7cc1ab1aee224cd096db932" }

    MCP_BLE_BTHOME__KEYS='{"54:48:E6:8F:80:A5": "231d39c1d7cc1ab1aee224cd096db932"}'

They are pydantic ``SecretStr``: ``mcp-ble config show`` prints them masked, and no error or log
line names a key's value (a wrong key is reported by its device address only).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ...core.errors import InvalidInput
from ...core.values import parse_address


class DeviceKeys(BaseModel):
    """``keys``: device address -> key as hex digits. Subclasses set the lengths allowed."""

    model_config = ConfigDict(extra="forbid")

    #: Hex digits a key may have, and what the format calls it.
    key_lengths: ClassVar[tuple[int, ...]] = (32,)
    key_name: ClassVar[str] = "key"

    keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="encryption keys by device address, as hex (never shown or logged)",
    )

    @field_validator("keys")
    @classmethod
    def _check(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        checked: dict[str, SecretStr] = {}
        digits = " or ".join(str(n) for n in cls.key_lengths)
        for address, key in keys.items():
            try:
                canonical = parse_address(address)
            except InvalidInput as exc:
                raise ValueError(f"{exc.what}: keys are given by device address") from None
            text = key.get_secret_value().strip().lower()
            try:
                bytes.fromhex(text)
            except ValueError:
                text = "not hex"
            if len(text) not in cls.key_lengths:
                raise ValueError(
                    f"the {cls.key_name} for {canonical} is not {digits} hex digits "
                    f"(its value is not shown)"
                )
            checked[canonical] = SecretStr(text)
        return checked

    def key_for(self, address: str) -> bytes | None:
        """The key of one device as bytes, or None."""
        key = self.keys.get(address.upper()) or self.keys.get(address.lower())
        return bytes.fromhex(key.get_secret_value()) if key is not None else None
