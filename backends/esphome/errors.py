"""aioesphomeapi's and bleak-esphome's exceptions as our errors.

The proxy reports GATT failures with ESP-IDF's ``esp_gatt_status_t``, whose values below 0x80 are
the ATT error codes (Core spec Vol 3, Part F, 3.4.1.1); ESPHome adds -1 for "not connected".
bleak-esphome raises them as ``BleakError`` whose cause is aioesphomeapi's
``BluetoothGATTAPIError``.
"""

from __future__ import annotations

from mcp_ble.core.errors import (
    BackendUnavailable,
    BleError,
    BleTimeout,
    ConnectionFailed,
    GattError,
    OutOfSlots,
)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def settings_table(radio: str) -> str:
    """The settings table of a proxy: its ``[[radios]]`` entry when it is a radio of the fleet
    (``radio`` its name), else ``[backends.esphome]``."""
    return f'[[radios]] name = "{radio}"' if radio else "[backends.esphome]"


def unreachable(
    exc: BaseException, where: str, table: str = "[backends.esphome]", key_env: str | None = None
) -> BackendUnavailable:
    """Why the proxy's native API could not be used, and the fix in ``table``, the proxy's
    settings table (``key_env``: the variable its noise_psk_env names, if that is set)."""
    from aioesphomeapi import (
        EncryptionPlaintextAPIError,
        InvalidAuthAPIError,
        InvalidEncryptionKeyAPIError,
        RequiresEncryptionAPIError,
        ResolveAPIError,
    )

    if isinstance(exc, InvalidEncryptionKeyAPIError):
        return BackendUnavailable(
            f"The ESPHome proxy at {where} refused our encryption key",
            (
                f"set the variable {key_env} (noise_psk_env of {table}) to the proxy's api: "
                "encryption: key:"
            )
            if key_env
            else f"set noise_psk of {table} to the proxy's api: encryption: key:",
        )
    if isinstance(exc, RequiresEncryptionAPIError):
        return BackendUnavailable(
            f"The ESPHome proxy at {where} requires encryption",
            f"give {table} the proxy's api: encryption: key: as noise_psk_env (the name of a "
            "variable holding it) or noise_psk",
        )
    if isinstance(exc, EncryptionPlaintextAPIError):
        return BackendUnavailable(
            f"The ESPHome proxy at {where} does not use encryption",
            f"remove {f'noise_psk_env ({key_env})' if key_env else 'noise_psk'} from {table}, "
            "or give the proxy an api: encryption: key:",
        )
    if isinstance(exc, InvalidAuthAPIError):
        return BackendUnavailable(
            f"The ESPHome proxy at {where} refused the API password",
            f"set password of {table} to the proxy's api: password:",
        )
    if isinstance(exc, ResolveAPIError):
        return BackendUnavailable(
            f"Cannot resolve the ESPHome proxy's host {where} ({_text(exc)})",
            f"check host of {table} (an IP address avoids mDNS)",
        )
    if isinstance(exc, TimeoutError):
        return BackendUnavailable(
            f"The ESPHome proxy at {where} did not answer in time",
            "check that it is powered and on the network; raise connect_timeout_s if it is slow",
        )
    return BackendUnavailable(
        f"Cannot reach the ESPHome proxy at {where} ({_socket_reason(exc)})",
        f"check host and port of {table} (the native API listens on 6053) and that the proxy "
        "is online",
    )


def _socket_reason(exc: BaseException) -> str:
    """The operating system's reason (connection refused, no route...) under aioesphomeapi's
    wrapping, which lists every address it tried."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    text = _text(exc)
    return text if len(text) <= 120 else text[:117] + "..."


def _gatt_code(exc: BaseException) -> int | None:
    from aioesphomeapi.core import BluetoothGATTAPIError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BluetoothGATTAPIError):
            return int(seen.error.error)
        seen = seen.__cause__
    return None


def connect_error(exc: BaseException, address: str, timeout_s: float) -> BleError:
    """A failed connect through the proxy."""
    text = str(exc)
    if isinstance(exc, TimeoutError):
        return BleTimeout(
            f"Connecting to {address} through the proxy timed out after {timeout_s:.1f} s",
            "the device may be out of the proxy's range or no longer advertising: scan again",
        )
    if "slot" in text.lower():
        return OutOfSlots(
            f"Connecting to {address} failed: {text}",
            "the proxy has no free connection slot: disconnect another device",
        )
    return ConnectionFailed(f"Connecting to {address} through the proxy failed: {text}", "retry")


def gatt_error(exc: BaseException, address: str, operation: str) -> BleError:
    """A failure of one GATT operation through the proxy."""
    if isinstance(exc, BleError):
        return exc
    code = _gatt_code(exc)
    if code == -1 or "not connected" in str(exc).lower():
        return ConnectionFailed(
            f"The link to {address} dropped before the {operation}", "connect again"
        )
    if code is not None and 0 < code < 0x100:
        return GattError(code, operation)
    if isinstance(exc, TimeoutError):
        return BleTimeout(
            f"The {operation} on {address} timed out", "the device may be busy or out of range"
        )
    return BleError(
        f"The {operation} on {address} through the proxy failed: {_text(exc)}",
        "retry; check the proxy's logs if it keeps failing",
    )
