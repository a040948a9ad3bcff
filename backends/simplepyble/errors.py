"""SimpleBLE's errors as ours.

simplepyble raises ``RuntimeError`` (or its own subclasses) carrying the platform's text: on Linux
the BlueZ D-Bus error (``org.bluez.Error.NotPermitted: Read not permitted``, ``... ATT error:
0x0e``), elsewhere SimpleBLE's own words. The text is all there is, so it is matched here.
"""

from __future__ import annotations

import re

from mcp_ble.core.errors import (
    BackendUnavailable,
    BleError,
    ConnectionFailed,
    GattError,
    OperationInProgress,
)

_ATT_CODE = re.compile(r"ATT error:?\s*0x([0-9a-fA-F]{2})")
NO_RADIO_HINT = 'on a machine without Bluetooth use backend = "simulated"'


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def unavailable(exc: BaseException) -> BackendUnavailable:
    """Why SimpleBLE cannot reach an adapter."""
    text = str(exc)
    if "org.freedesktop.DBus.Error.FileNotFound" in text or "system_bus_socket" in text:
        return BackendUnavailable(
            "The simplepyble backend cannot start: there is no D-Bus system bus, so BlueZ "
            f"cannot be reached ({text})",
            "install and start D-Bus and BlueZ (sudo apt install bluez; sudo systemctl start "
            "bluetooth); " + NO_RADIO_HINT,
        )
    if "ServiceUnknown" in text or ("org.bluez" in text and "not provided" in text):
        return BackendUnavailable(
            "The simplepyble backend cannot start: BlueZ (bluetoothd) is not running",
            "start it: sudo systemctl start bluetooth",
        )
    if "AccessDenied" in text or "NotAuthorized" in text or isinstance(exc, PermissionError):
        return BackendUnavailable(
            f"The simplepyble backend cannot start: access to Bluetooth was refused ({text})",
            "Linux: add yourself to the bluetooth group; macOS: allow Bluetooth for your "
            "terminal or MCP client in System Settings > Privacy & Security > Bluetooth",
        )
    return BackendUnavailable(
        f"The simplepyble backend cannot start: {_text(exc)}",
        "run 'mcp-ble doctor'; " + NO_RADIO_HINT,
    )


#: Texts SimpleBLE carries when the adapter, BlueZ or the D-Bus connection itself went away.
_RADIO_GONE = (
    "org.freedesktop.DBus.Error.FileNotFound",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.bluez.Error.NotReady",
    "system_bus_socket",
    "No Bluetooth adapters",
)


def radio_gone(exc: BaseException) -> str | None:
    """Why the radio itself is gone, if ``exc`` says so; None for a failure of one operation."""
    text = str(exc)
    if any(marker in text for marker in _RADIO_GONE):
        return f"the Bluetooth adapter or BlueZ is gone ({_text(exc)})"
    return None


def operation_error(exc: BaseException, address: str, operation: str) -> BleError:
    """A failed read, write, subscription or connection as our error."""
    if isinstance(exc, BleError):
        return exc
    text = str(exc)
    lowered = text.lower()
    match = _ATT_CODE.search(text)
    if match:
        return GattError(int(match.group(1), 16), operation)
    if "NotPermitted" in text or "not permitted" in lowered:
        if "read" in lowered:
            return GattError(0x02, operation)
        if "write" in lowered:
            return GattError(0x03, operation)
    if "InvalidValueLength" in text or "invalid length" in lowered:
        return GattError(0x0D, operation)
    if "NotAuthorized" in text:
        return GattError(0x05, operation)
    if "NotSupported" in text:
        return GattError(0x06, operation)
    if "InProgress" in text or "in progress" in lowered:
        return OperationInProgress(
            f"The Bluetooth stack is busy with another operation on {address}",
            "retry in a moment",
        )
    if "not connected" in lowered or "NotConnected" in text:
        return ConnectionFailed(
            f"The link to {address} dropped during the {operation}", "connect again"
        )
    if "not found" in lowered:
        return GattError(0x01, operation, "list the GATT tree again (ble_services)")
    if "le-connection-abort-by-local" in text or "connection-canceled" in text:
        return ConnectionFailed(
            f"The {operation} on {address} was aborted ({text})",
            "retry; move closer to the device if it keeps failing",
        )
    if operation == "connect":
        return ConnectionFailed(f"Connecting to {address} failed: {_text(exc)}", "retry")
    return BleError(
        f"The {operation} on {address} failed: {_text(exc)}",
        "retry; run 'mcp-ble doctor' if it keeps failing",
    )
