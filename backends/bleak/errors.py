"""bleak's exceptions, and the strings BlueZ, CoreBluetooth and WinRT put in them, as our errors.

Each mapping keeps bleak's own text in the message (it names the platform's reason) and adds what to
do next. Classification follows how the stacks fail (BlueZ's ``org.bluez.Error.*`` names, the HCI
error codes of Core spec Vol 1, Part F): the retry plugin reads ``kind``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mcp_ble.core.errors import (
    BackendUnavailable,
    BleError,
    BleTimeout,
    ConnectionFailed,
    DeviceNotFound,
    GattError,
    NotPermitted,
    OperationInProgress,
    OutOfSlots,
)

DBUS_SOCKET = Path("/run/dbus/system_bus_socket")
_ATT_CODE = re.compile(r"ATT error: 0x([0-9a-fA-F]{2})")
NO_RADIO_HINT = (
    'on a machine without Bluetooth use backend = "simulated" (or "auto", which falls back to '
    "the simulated demo world)"
)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def unavailable(exc: BaseException, adapter: str | None) -> BackendUnavailable:
    """Why bleak cannot reach a Bluetooth adapter here, and how to fix it."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason

    text = str(exc)
    if isinstance(exc, BleakBluetoothNotAvailableError):
        reason = exc.reason
        if reason == BleakBluetoothNotAvailableReason.POWERED_OFF:
            return BackendUnavailable(
                "Bluetooth is turned off", "turn it on in the system settings and start again"
            )
        if reason in (
            BleakBluetoothNotAvailableReason.DENIED_BY_USER,
            BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
            BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN,
        ):
            return BackendUnavailable(
                f"This program may not use Bluetooth ({text})",
                "allow Bluetooth for the app that runs mcp-ble (macOS: System Settings > Privacy "
                "& Security > Bluetooth, for your terminal or MCP client)",
            )
        return BackendUnavailable(f"No Bluetooth radio is available ({text})", NO_RADIO_HINT)
    if sys.platform.startswith("linux"):
        if isinstance(exc, FileNotFoundError | ConnectionRefusedError) or "system_bus" in text:
            return BackendUnavailable(
                f"Cannot reach the D-Bus system bus ({DBUS_SOCKET} is missing or refuses "
                "connections), so BlueZ cannot be asked for an adapter",
                "install and start D-Bus and BlueZ (Debian/Ubuntu: sudo apt install bluez; "
                "sudo systemctl start bluetooth); in a container, mount /run/dbus from the host; "
                + NO_RADIO_HINT,
            )
        if isinstance(exc, PermissionError) or "AccessDenied" in text or "NotAuthorized" in text:
            return BackendUnavailable(
                f"BlueZ refused this user ({_text(exc)})",
                "add yourself to the bluetooth group (sudo usermod -aG bluetooth $USER, then log "
                "in again) or run mcp-ble as a user BlueZ's D-Bus policy allows",
            )
        if "ServiceUnknown" in text or "org.bluez was not provided" in text:
            return BackendUnavailable(
                "BlueZ (bluetoothd) is not running",
                "start it: sudo systemctl start bluetooth",
            )
        if adapter and ("not found" in text.lower() or "UnknownObject" in text):
            return BackendUnavailable(
                f"There is no Bluetooth adapter named '{adapter}' ({_text(exc)})",
                "list adapters with `bluetoothctl list` and set [backends.bleak] adapter to one "
                "of them, or remove the setting to use the default adapter",
            )
        if "No Bluetooth adapters found" in text or "NoAdapter" in text:
            return BackendUnavailable(
                "BlueZ runs but has no Bluetooth adapter",
                "plug in an adapter or unblock it (rfkill unblock bluetooth); " + NO_RADIO_HINT,
            )
        if "NotReady" in text or "Resource Not Ready" in text:
            return BackendUnavailable(
                "The Bluetooth adapter is powered off",
                "power it on: bluetoothctl power on (and rfkill unblock bluetooth)",
            )
    return BackendUnavailable(
        f"bleak cannot use a Bluetooth adapter here ({_text(exc)})",
        "run 'mcp-ble doctor' for a diagnosis; " + NO_RADIO_HINT,
    )


def radio_gone(exc: BaseException | None) -> str | None:
    """Why the radio itself is gone, if ``exc`` says so: the adapter was removed or powered off,
    bluetoothd went away, or the D-Bus connection to it broke. None for a failure of one
    operation or link."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError

    if exc is None:
        return None
    text = str(exc)
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return f"no Bluetooth adapter is available ({_text(exc)})"
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError | EOFError | BrokenPipeError):
        return f"the D-Bus connection to BlueZ is gone ({_text(exc)})"
    if isinstance(exc, BleakDBusError):
        name = exc.dbus_error
        if name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.bluez.Error.NotReady"):
            return f"BlueZ has no usable adapter ({_text(exc)})"
    if re.search(r"adapter '[^']*' not found|No Bluetooth adapters", text):
        return f"the Bluetooth adapter is gone ({_text(exc)})"
    return radio_gone(exc.__cause__) if exc.__cause__ is not exc else None


def connect_error(exc: BaseException, address: str, timeout_s: float) -> BleError:
    """bleak-retry-connector's typed errors (one attempt) as ours; our retry plugin decides."""
    from bleak.exc import BleakBluetoothNotAvailableError
    from bleak_retry_connector import (
        BleakAbortedError,
        BleakConnectionError,
        BleakNotFoundError,
        BleakOutOfConnectionSlotsError,
    )

    cause = exc.__cause__
    if isinstance(exc, TimeoutError) or isinstance(cause, TimeoutError):
        return BleTimeout(
            f"Connecting to {address} timed out after {timeout_s:.1f} s",
            "the device may be out of range or no longer advertising: scan to check it is "
            "still there, or allow a longer timeout",
        )
    if isinstance(exc, BleakOutOfConnectionSlotsError):
        return OutOfSlots(
            f"Connecting to {address} failed: {exc}",
            "the adapter has no free connection slot: disconnect another device",
        )
    if isinstance(exc, BleakNotFoundError):
        return DeviceNotFound(
            f"Connecting to {address} failed: {exc}",
            "the Bluetooth stack no longer knows the device: scan again, then connect",
        )
    if isinstance(exc, BleakAbortedError):
        return ConnectionFailed(
            f"Connecting to {address} was aborted: {exc}",
            "retry; move closer to the device if it keeps failing",
        )
    if isinstance(cause, BleakBluetoothNotAvailableError | FileNotFoundError | EOFError):
        return unavailable(cause, None)
    if isinstance(exc, BleakConnectionError):
        return ConnectionFailed(f"Connecting to {address} failed: {exc}", "retry")
    return ConnectionFailed(f"Connecting to {address} failed: {_text(exc)}", "retry")


def attempt_error(exc: BaseException, address: str, timeout_s: float) -> BleError:
    """The raw failure of our one connect attempt, classified with bleak-retry-connector's
    vocabulary (it would have retried these itself)."""
    from bleak.exc import BleakDeviceNotFoundError

    if isinstance(exc, TimeoutError):
        return connect_error(exc, address, timeout_s)
    text = str(exc)
    if isinstance(exc, BleakDeviceNotFoundError) or "UnknownObject" in text:
        return DeviceNotFound(
            f"Connecting to {address} failed: the Bluetooth stack does not know the device "
            f"({_text(exc)})",
            "scan again, then connect",
        )
    if "available connection" in text or "connection slot" in text:
        return OutOfSlots(
            f"Connecting to {address} failed: {_text(exc)}",
            "the adapter has no free connection slot: disconnect another device",
        )
    return ConnectionFailed(f"Connecting to {address} failed: {_text(exc)}", "retry")


# BlueZ's D-Bus names for ATT errors (src/gatt-client.c), as BleakDBusError carries them.
_BLUEZ_ATT = {
    ("org.bluez.Error.NotPermitted", "read"): 0x02,
    ("org.bluez.Error.NotPermitted", "write"): 0x03,
    ("org.bluez.Error.NotAuthorized", ""): 0x05,
    ("org.bluez.Error.InvalidValueLength", ""): 0x0D,
    ("org.bluez.Error.InvalidOffset", ""): 0x07,
    ("org.bluez.Error.NotSupported", ""): 0x06,
}


def gatt_error(exc: BaseException, address: str, operation: str) -> BleError:
    """A failure of one GATT operation as our error."""
    from bleak.exc import (
        BleakCharacteristicNotFoundError,
        BleakDBusError,
        BleakError,
        BleakGATTProtocolError,
    )

    if isinstance(exc, BleError):
        return exc
    if isinstance(exc, BleakGATTProtocolError):
        return GattError(int(exc.code), operation)
    if isinstance(exc, BleakCharacteristicNotFoundError):
        return GattError(0x01, operation)
    if isinstance(exc, TimeoutError):
        return BleTimeout(
            f"The {operation} on {address} timed out", "the device may be busy or out of range"
        )
    if isinstance(exc, EOFError | BrokenPipeError):
        return ConnectionFailed(
            f"The connection to the Bluetooth stack broke during the {operation} on {address}",
            "retry; if it persists restart bluetoothd",
        )
    text = str(exc)
    if isinstance(exc, BleakDBusError):
        name = exc.dbus_error
        details = (exc.dbus_error_details or "").lower()
        match = _ATT_CODE.search(exc.dbus_error_details or "")
        if match:
            return GattError(int(match.group(1), 16), operation)
        for (error_name, word), code in _BLUEZ_ATT.items():
            if name == error_name and word in details:
                return GattError(code, operation)
        if name == "org.bluez.Error.InProgress":
            return OperationInProgress(
                f"BlueZ is still busy with another operation on {address}", "retry in a moment"
            )
        if name == "org.bluez.Error.NotConnected":
            return ConnectionFailed(f"{address} is no longer connected", "connect again")
        if name == "org.bluez.Error.NotPermitted":
            return NotPermitted(f"BlueZ refused the {operation} on {address}: {text}")
    if isinstance(exc, BleakError) and "not connected" in text.lower():
        return ConnectionFailed(
            f"The link to {address} dropped before the {operation}", "connect again"
        )
    return BleError(
        f"The {operation} on {address} failed: {_text(exc)}",
        "retry; run 'mcp-ble doctor' if it keeps failing",
    )
