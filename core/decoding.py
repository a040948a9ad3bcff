"""One app's decoders: the ``decoding`` hook family behind a small, safe interface.

The core asks the enabled decoder plugins (``mcp_ble_decode_value``, ``mcp_ble_encode_value``,
``mcp_ble_uuid_name``; the first listed in the settings file that answers wins) and never depends
on one being loaded: with none, a value is hex (and text when it is text) and a UUID has no
name. A decoder that raises is a plugin bug: it is logged and the value shown undecoded, so a
read never fails because of its decoding.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy

from .errors import BleError, InvalidInput

log = logging.getLogger("mcp_ble")

#: Names remembered per app (UUIDs a server meets are few; the bound keeps a hostile peer with
#: thousands of random UUIDs from growing it).
MAX_NAMES = 4096


class Codec:
    """Decode, encode and name through the app's plugins."""

    def __init__(self, hook: pluggy.HookRelay) -> None:
        self._hook = hook
        self._names: dict[str, str | None] = {}
        self.decoders = bool(hook.mcp_ble_decode_value.get_hookimpls())
        self.encoders = bool(hook.mcp_ble_encode_value.get_hookimpls())
        self.namers = bool(hook.mcp_ble_uuid_name.get_hookimpls())

    def decode(self, uuid: str, data: bytes) -> dict[str, Any] | None:
        """The decoded fields of a value, or None when no decoder answers (or one failed)."""
        if not self.decoders:
            return None
        try:
            fields = self._hook.mcp_ble_decode_value(uuid=uuid, data=data)
        except Exception:
            log.exception("decoding %s failed in a decoder plugin; shown undecoded", uuid)
            return None
        if fields is None:
            return None
        if not isinstance(fields, dict):
            log.error("a decoder returned %r for %s, not a dict; shown undecoded", fields, uuid)
            return None
        return fields

    def encode(self, uuid: str, value: Any) -> bytes | None:
        """The bytes a decoder makes of a typed value, or None when none can encode ``uuid``.
        A wrong shape raises the decoder's ``InvalidInput``."""
        if not self.encoders:
            return None
        try:
            data = self._hook.mcp_ble_encode_value(uuid=uuid, value=value)
        except BleError:
            raise
        except Exception as exc:
            log.exception("encoding %s failed in a decoder plugin", uuid)
            raise InvalidInput(
                f"the value could not be encoded for {uuid}: {type(exc).__name__}: {exc}",
                "pass the fields ble_read shows for it, or give the bytes as a hex string",
            ) from None
        if data is not None and not isinstance(data, bytes | bytearray):
            log.error("an encoder returned %r for %s, not bytes", data, uuid)
            return None
        return None if data is None else bytes(data)

    def name(self, uuid: str) -> str | None:
        """The name of a service, characteristic or descriptor UUID, or None."""
        try:
            return self._names[uuid]
        except KeyError:
            pass
        name: str | None = None
        if self.namers:
            try:
                name = self._hook.mcp_ble_uuid_name(uuid=uuid)
            except Exception:
                log.exception("naming %s failed in a plugin", uuid)
                return None  # not remembered: the next call asks again
            if name is not None and not isinstance(name, str):
                name = None
        if len(self._names) < MAX_NAMES:
            self._names[uuid] = name
        return name


#: For results built without an app (tests, tools that show raw values): nothing decoded.
class _NoPlugins:
    class _Caller:
        def get_hookimpls(self) -> list[Any]:
            return []

    def __getattr__(self, name: str) -> Any:
        return self._Caller()


NO_DECODERS = Codec(_NoPlugins())  # type: ignore[arg-type]
