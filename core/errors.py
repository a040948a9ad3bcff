"""The one exception hierarchy of mcp-ble.

Every error is a message a person or an agent reads: what happened, then what to do next. The
``kind`` tells the retry machinery how the failure behaves on real stacks (BlueZ, CoreBluetooth,
WinRT):

- ``transient``: interference, aborted connection, operation in progress; retry soon.
- ``backoff``: out of connection slots, device gone from the bus; retry after seconds.
- ``timeout``: a deadline passed; never retried inside the same caller deadline.
- ``fatal``: bad input, permissions, GATT refusals; retrying cannot help.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorKind = Literal["transient", "backoff", "timeout", "fatal"]


class BleError(Exception):
    """Base class. ``str(error)`` is the full user-facing message."""

    kind: ClassVar[ErrorKind] = "fatal"
    code: ClassVar[str] = "ble_error"

    #: How many attempts the core made before giving up (set by the core).
    attempts: int = 1
    #: Seconds the backend already waited after the failure before reporting it (a library that
    #: waits for the link to tear down); a retry policy subtracts it from its own backoff.
    waited_s: float = 0.0

    def __init__(self, what: str, hint: str = "") -> None:
        self.what = what
        first = hint.split(" ", 1)[0]
        # Sentence case, but never mangle an identifier such as ble_scan or a quoted name.
        self.hint = hint[:1].upper() + hint[1:] if first.isalpha() and first.islower() else hint
        super().__init__(f"{what}. {self.hint}" if hint else what)


class InvalidInput(BleError):
    """An argument is malformed: address, UUID, hex, base64, a number out of range."""

    code = "invalid_input"


class DeviceNotFound(BleError):
    """The address is not among the devices seen by a scan (or it stopped advertising)."""

    code = "device_not_found"
    kind = "backoff"


class NotConnected(BleError):
    code = "not_connected"


class NotSubscribed(BleError):
    code = "not_subscribed"


class AttributeNotFound(BleError):
    """No characteristic or descriptor matches the name, or the name is ambiguous."""

    code = "attribute_not_found"


class AmbiguousAttribute(AttributeNotFound):
    code = "ambiguous_attribute"


class NotPermitted(BleError):
    """The characteristic's properties do not allow the operation."""

    code = "not_permitted"


class ValueTooLong(BleError):
    code = "value_too_long"


class BleTimeout(BleError):
    code = "timeout"
    kind = "timeout"


class ConnectionFailed(BleError):
    """The link could not be established or was lost mid-operation; usually transient."""

    code = "connection_failed"
    kind = "transient"


class OperationInProgress(BleError):
    code = "operation_in_progress"
    kind = "transient"


class OutOfSlots(BleError):
    """The adapter has no free connection slot."""

    code = "out_of_slots"
    kind: ClassVar[ErrorKind] = "backoff"


class EveryRadioFull(OutOfSlots):
    """Every radio of several that hears the device is full (core/fleet.py): waiting frees no
    slot (one frees when a link ends), so the connect answers at once, without a retry."""

    kind = "fatal"


class GattError(BleError):
    """The peripheral answered an ATT request with an error response."""

    code = "gatt_error"

    #: Every ATT error code of the Core spec (Vol 3, Part F, 3.4.1.1, Table 3.4), and the common
    #: profile and service error codes (Core Specification Supplement, Part B, 1.2).
    ATT_ERRORS: ClassVar[dict[int, tuple[str, str]]] = {
        0x01: ("Invalid Handle", "list the GATT tree again with ble_services(refresh=true)"),
        0x02: ("Read Not Permitted", "this attribute cannot be read"),
        0x03: ("Write Not Permitted", "this attribute cannot be written"),
        0x04: (
            "Invalid PDU",
            "the device could not parse the request: retry, and check its firmware if it persists",
        ),
        0x05: ("Insufficient Authentication", "pair with the device first (ble_pair)"),
        0x06: ("Request Not Supported", "the device does not support this request"),
        0x07: ("Invalid Offset", "the value is shorter than the requested offset"),
        0x08: ("Insufficient Authorization", "the device must authorize this client first"),
        0x09: (
            "Prepare Queue Full",
            "the device cannot queue a write this long: send fewer bytes per call",
        ),
        0x0A: ("Attribute Not Found", "list the GATT tree again with ble_services(refresh=true)"),
        0x0B: (
            "Attribute Not Long",
            "this attribute takes no long read or write: send at most MTU-3 bytes",
        ),
        0x0C: (
            "Encryption Key Size Too Short",
            "the link's key is too short for this attribute: remove the bond and pair again",
        ),
        0x0D: ("Invalid Attribute Value Length", "check the value's expected length"),
        0x0E: ("Unlikely Error", "retry the operation"),
        0x0F: ("Insufficient Encryption", "pair with the device to encrypt the link"),
        0x10: ("Unsupported Group Type", "the device does not support this kind of discovery"),
        0x11: ("Insufficient Resources", "retry later"),
        0x12: (
            "Database Out Of Sync",
            "the device's GATT database changed: run ble_services(refresh=true), then retry",
        ),
        0x13: ("Value Not Allowed", "the device does not accept this value; check what it allows"),
        0xFC: (
            "Write Request Rejected",
            "the device rejected the write in its current state; check the value and its state",
        ),
        0xFD: (
            "Client Characteristic Configuration Descriptor Improperly Configured",
            "notifications or indications this needs are off: ble_subscribe first",
        ),
        0xFE: ("Procedure Already in Progress", "wait for the running procedure, then retry"),
        0xFF: ("Out of Range", "the value is outside the range the device accepts"),
    }

    @classmethod
    def describe(cls, att_code: int) -> tuple[str, str]:
        """(what the code means, what to do) for any code a device may send."""
        known = cls.ATT_ERRORS.get(att_code)
        if known is not None:
            return known
        if 0x80 <= att_code <= 0x9F:
            return (
                f"application error 0x{att_code:02X} (defined by the device's profile)",
                "the device's profile or documentation says what it means; check the value "
                "and the device's state",
            )
        reserved = "common profile errors" if 0xE0 <= att_code <= 0xFB else "future use"
        return (
            f"ATT error 0x{att_code:02X}, a code reserved for {reserved}",
            "the device sent a code it should not; retry, and check its firmware if it persists",
        )

    def __init__(self, att_code: int, operation: str, hint: str = "") -> None:
        self.att_code = att_code
        name, default_hint = self.describe(att_code)
        if att_code in self.ATT_ERRORS:
            name = f"{name} (ATT error 0x{att_code:02X})"
        super().__init__(f"The device refused the {operation}: {name}", hint or default_hint)


class BackendUnavailable(BleError):
    """The backend cannot start on this machine (no adapter, no D-Bus, missing extra)."""

    code = "backend_unavailable"


class ConfigError(Exception):
    """A settings or world file is invalid. The CLI prints it and exits with code 2."""

    def __init__(self, message: str, hint: str = "") -> None:
        #: What to do about it, for a tool error's ``hint`` (the CLI prints the whole message).
        self.what, self.hint = message, hint[:1].upper() + hint[1:]
        super().__init__(f"{message}. {self.hint}" if hint else message)
