"""A connected device's GATT tree, indexed for the names agents use."""

from __future__ import annotations

from collections.abc import Callable

from .errors import AmbiguousAttribute, AttributeNotFound, InvalidInput
from .models import GattCharacteristic, GattDescriptor, GattService
from .sig import short_uuid
from .values import parse_handle, parse_uuid

#: Characteristic references remembered per device (names an agent repeats in a loop).
MAX_RESOLVED = 256


def label(uuid: str, name: str | None = None) -> str:
    """``'2a19 (Battery Level)'``: short form when there is one, plus its name when known."""
    short = short_uuid(uuid) or uuid
    return f"{short} ({name})" if name else short


def _digits_uuid(ref: str | int) -> str | None:
    """The UUID an integer's decimal digits spell as hex (2902 -> '2902'), or None. Some clients
    (the MCP Inspector CLI among them) send an argument of digits as a JSON number, which this
    server reads as a handle."""
    if not isinstance(ref, int) or isinstance(ref, bool):
        return None
    try:
        return parse_uuid(str(ref))
    except InvalidInput:
        return None


def _meant_uuid(ref: str | int, what: str) -> str:
    # A handle and a UUID are different things: say so rather than guess.
    return (
        f'did you mean UUID \'{ref}\'? Pass it as a string: {what}="{ref}", or "0x{ref}" '
        "if your client turns digits into a number (a number is read as a handle)"
    )


#: Characteristic User Description (Core Vol 3 Part G §3.3.3.2): text naming one characteristic.
USER_DESCRIPTION = parse_uuid("2901")


def _candidate(char: GattCharacteristic, service: str) -> str:
    """``handle 3 in service 180f (Battery Service) 'Left'``: what tells it from others of its
    UUID; where its User Description was not read yet, the descriptor handle that holds it."""
    text = f"handle {char.handle} in service {service}"
    if char.description:
        return f"{text} '{char.description}'"
    described = [d.handle for d in char.descriptors if d.uuid == USER_DESCRIPTION]
    return f"{text}, User Description in descriptor #{described[0]}" if described else text


def note_description(desc: GattDescriptor, char: GattCharacteristic, data: bytes) -> None:
    """Keeps the text of a User Description read on ``char``."""
    if desc.uuid == USER_DESCRIPTION:
        text = " ".join(data.decode("utf-8", "replace").split())
        char.description = text[:40] or None


class GattIndex:
    """Characteristics and descriptors by handle and by UUID."""

    def __init__(
        self, services: list[GattService], names: Callable[[str], str | None] | None = None
    ) -> None:
        """``names`` (the app's ``Codec.name``) names each service, characteristic and
        descriptor once, here."""
        self.services = services
        self.names = names
        self.characteristics: dict[int, GattCharacteristic] = {}
        self.by_uuid: dict[str, list[GattCharacteristic]] = {}
        self.descriptors: dict[int, tuple[GattDescriptor, GattCharacteristic]] = {}
        self._resolved: dict[str | int, GattCharacteristic] = {}
        for service in services:
            if names is not None:
                service.name = names(service.uuid)
            for char in service.characteristics:
                char.service_uuid = char.service_uuid or service.uuid
                if names is not None:
                    char.name = names(char.uuid)
                    for desc in char.descriptors:
                        desc.name = names(desc.uuid)
                self.characteristics[char.handle] = char
                self.by_uuid.setdefault(char.uuid, []).append(char)
                for desc in char.descriptors:
                    self.descriptors[desc.handle] = (desc, char)

    def characteristic(self, ref: str | int, address: str) -> GattCharacteristic:
        """Resolve a full UUID, a 16-bit UUID or a handle to exactly one characteristic."""
        known = self._resolved.get(ref)
        if known is not None:
            return known
        char = self._resolve(ref, address)
        if len(self._resolved) < MAX_RESOLVED:  # spellings come from clients: bounded
            self._resolved[ref] = char  # names repeat on the hot path (ble_read in a loop)
        return char

    def _resolve(self, ref: str | int, address: str) -> GattCharacteristic:
        handle = parse_handle(ref)
        if handle is not None:
            char = self.characteristics.get(handle)
            if char is None:
                uuid = _digits_uuid(ref)
                raise AttributeNotFound(
                    f"{address} has no characteristic with value handle {handle}",
                    _meant_uuid(ref, "characteristic")
                    if uuid in self.by_uuid
                    else f"characteristic handles here: {self._handles()}; "
                    "ble_services lists them with names",
                )
            return char
        uuid = parse_uuid(str(ref))
        found = self.by_uuid.get(uuid, [])
        if len(found) == 1:
            return found[0]
        if not found:
            raise AttributeNotFound(
                f"{address} has no characteristic {self.label(uuid)}",
                f"it has: {self._known()}; ble_services shows the full tree",
            )
        candidates = "; ".join(_candidate(c, self.label(c.service_uuid)) for c in found)
        raise AmbiguousAttribute(
            f"{address} has {len(found)} characteristics {self.label(uuid)}: {candidates}",
            f"name one by its handle instead, e.g. characteristic='#{found[0].handle}'",
        )

    def descriptor(
        self, ref: str | int, address: str, characteristic: GattCharacteristic | None
    ) -> GattDescriptor:
        handle = parse_handle(ref)
        if handle is not None:
            entry = self.descriptors.get(handle)
            if entry is None:
                uuid = _digits_uuid(ref)
                scope = [characteristic] if characteristic else self.characteristics.values()
                known = any(d.uuid == uuid for c in scope for d in c.descriptors)
                raise AttributeNotFound(
                    f"{address} has no descriptor with handle {handle}",
                    _meant_uuid(ref, "descriptor")
                    if known
                    else "ble_services lists every descriptor with its handle",
                )
            return entry[0]
        uuid = parse_uuid(str(ref))
        scope = [characteristic] if characteristic else list(self.characteristics.values())
        found = [(d, c) for c in scope for d in c.descriptors if d.uuid == uuid]
        if len(found) == 1:
            return found[0][0]
        if not found:
            where = (
                f" on characteristic {label(characteristic.uuid, characteristic.name)}"
                if characteristic
                else ""
            )
            raise AttributeNotFound(
                f"{address} has no descriptor {self.label(uuid)}{where}",
                "ble_services lists every descriptor with its handle",
            )
        candidates = "; ".join(f"handle {d.handle} on {label(c.uuid, c.name)}" for d, c in found)
        raise AmbiguousAttribute(
            f"{address} has {len(found)} descriptors {self.label(uuid)}: {candidates}",
            "pass characteristic= to pick one, or name the descriptor by handle "
            f"(e.g. descriptor='#{found[0][0].handle}')",
        )

    def label(self, uuid: str) -> str:
        return label(uuid, self.names(uuid) if self.names is not None else None)

    def _known(self) -> str:
        names = [self.label(uuid) for uuid in self.by_uuid]
        return ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")

    def _handles(self) -> str:
        handles = sorted(self.characteristics)
        return ", ".join(map(str, handles[:30])) + (" ..." if len(handles) > 30 else "")
