"""Errors of the bumble backend: what to check when a transport does not open, HCI reason codes
as words, and our errors for failed connections and ATT operations."""

from __future__ import annotations

from mcp_ble.core.errors import BleError, BleTimeout, ConnectionFailed, GattError, OutOfSlots

#: HCI errors that mean "no room for another link" (Core Vol 1, Part F).
OUT_OF_SLOTS_CODES = frozenset({0x07, 0x09, 0x0D})


def transport_hint(transport: str) -> str:
    """What to check when a transport does not open, by its scheme."""
    scheme = transport.split(":", 1)[0]
    hints = {
        "usb": "plug in a Bluetooth USB dongle (usb:0 is the first one; `bumble-usb-probe` lists "
        "them). On Linux the kernel driver must let go of it: run as root or add a udev rule "
        "for the dongle, and unload btusb (`sudo modprobe -r btusb`); on Windows install the "
        "WinUSB driver for the dongle with Zadig",
        "pyusb": "same as usb: a dongle the kernel driver has released",
        "serial": "check the port and baud rate (serial:/dev/ttyUSB0,1000000) and that you may "
        "open the port (Linux: the dialout group)",
        "tcp-client": "check host and port, and that the HCI bridge is listening",
        "tcp-server": "check that the port is free and the controller connects to it",
        "hci-socket": "needs Linux, root (or CAP_NET_RAW) and the adapter released by BlueZ "
        "(`sudo hciconfig hci0 down`)",
        "vhci": "needs /dev/vhci (`sudo modprobe hci_vhci`) and root",
        "android-netsim": "start the Android emulator (it runs netsim) first",
        "android-emulator": "start the Android emulator first",
    }
    return hints.get(scheme, "see bumble's transport names: usb:0, serial:PORT,BAUD, tcp-client:")


def describe_reason(code: int) -> str:
    """``remote user terminated connection (0x13)`` from an HCI error code."""
    from bumble.hci import HCI_Constant

    name = HCI_Constant.error_name(code)
    if name.startswith("0x"):
        return f"HCI error {name}"
    words = name.removeprefix("HCI_").removesuffix("_ERROR").replace("_", " ").lower()
    return f"{words} (0x{code:02X})"


def connect_error(address: str, code: int | None) -> BleError:
    """Our error for a connection that failed with an HCI error code."""
    reason = describe_reason(code) if code is not None else "unknown reason"
    if code in OUT_OF_SLOTS_CODES:
        return OutOfSlots(
            f"Connecting to {address} failed: {reason}",
            "the controller has no free connection slot; disconnect another device",
        )
    return ConnectionFailed(
        f"Connecting to {address} failed: {reason}",
        "retry; move closer to the device if it keeps failing",
    )


def gatt_error(exc: BaseException, address: str, operation: str) -> BleError:
    """Our error for a failed ATT operation (an ATT error response, a timeout, anything else)."""
    from bumble import att, core

    if isinstance(exc, att.ATT_Error):
        return GattError(int(exc.error_code), operation)
    if isinstance(exc, core.TimeoutError | TimeoutError):
        return BleTimeout(
            f"{address} did not answer the {operation} within the ATT timeout",
            "the device may be busy or out of range",
        )
    return ConnectionFailed(
        f"The {operation} on {address} failed: {type(exc).__name__}: {exc}",
        "retry; reconnect if it keeps failing",
    )
