"""How results show sensor readings decoded from advertisements (:mod:`.sensors`).

A device's readings are one flat object, reading name -> ``"<value> <unit>"``:
``{"temperature":"21.5 °C","humidity":"45 %","battery":"93 %"}``. A reading heard at least a
second before the device's newest one says how long before: ``"21.5 °C, 40 s earlier"`` (a
sensor that sends its values in different packets, as Xiaomi's do, has readings of different
ages). A number is shown as the decoder gave it (``21.5``, ``1013.2``), a whole float without
``.0``, a flag as ``true``/``false``; a reading without a unit is the value alone.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .errors import InvalidInput
from .outputs import SensorOut
from .values import shown

if TYPE_CHECKING:
    from .models import SensorReading
    from .sensors import DeviceReadings

#: How a ``measurement`` argument may look: lower snake case, as decoders name them.
_MEASUREMENT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def value_text(value: float | int | str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(round(value, 6))
    return str(value)


def reading_text(reading: SensorReading, earlier_s: float = 0.0) -> str:
    """``"21.5 °C"``; with ``, N s earlier`` when heard at least 1 s before the newest."""
    text = value_text(reading.value)
    if reading.unit:
        text = f"{text} {reading.unit}"
    if earlier_s >= 1:
        text = f"{text}, {earlier_s:.0f} s earlier"
    return text


def readings_out(pairs: list[tuple[SensorReading, float]]) -> dict[str, str] | None:
    """One device's readings (``(reading, heard_at)`` pairs) as results show them; ``None``
    (the field left out) when it has none."""
    if not pairs:
        return None
    newest = max(heard for _, heard in pairs)
    return {reading.ident: reading_text(reading, newest - heard) for reading, heard in pairs}


def parse_measurement(text: str | None) -> str | None:
    """The ``measurement`` filter, lower case; InvalidInput with the form when it is not one."""
    if text is None:
        return None
    wanted = text.strip().casefold()
    if not _MEASUREMENT.match(wanted):
        raise InvalidInput(
            f"measurement '{shown(text)}' is not a measurement name",
            "give one in lower snake case such as 'temperature', 'humidity', 'battery', "
            "'pressure' or 'carbon_dioxide', or leave it out to list every reading",
        )
    return wanted


#: Common short names for a measurement, suggested when the short one is not known.
ALIASES = {
    "co2": "carbon_dioxide",
    "temp": "temperature",
    "humid": "humidity",
    "rh": "humidity",
    "batt": "battery",
    "tvoc": "volatile_organic_compounds",
    "voc": "volatile_organic_compounds",
    "co": "carbon_monoxide",
    "lux": "illuminance",
    "hr": "heart_rate",
    "pm2_5": "pm25",
}


def check_measurement(wanted: str, known: Iterable[str] | None) -> None:
    """InvalidInput when no enabled decoder can give ``wanted`` (``known``: every name they can
    give, ``None`` when a decoder does not say), naming the closest few (an alias's meaning
    first) and how many are known, not every one (there are over a hundred)."""
    if known is None:
        return
    names = sorted(set(known))
    if wanted in names:
        return
    alias = [ALIASES[wanted]] if ALIASES.get(wanted) in names else []
    close = alias + [n for n in difflib.get_close_matches(wanted, names, n=3) if n not in alias]
    guess = f"Did you mean {' or '.join(repr(n) for n in close[:3])}? " if close else ""
    raise InvalidInput(
        f"measurement '{wanted}' is not one the enabled decoders give",
        f"{guess}{len(names)} names are known; leave measurement out to see every reading heard",
    )


def sensor_out(device: DeviceReadings, now: float) -> SensorOut:
    """One device of ``ble_sensors`` and ``ble://sensors``: its readings, and how long ago the
    newest was heard (``now`` and ``heard_at`` on the app's clock)."""
    return SensorOut(
        address=device.address,
        name=device.name or None,
        readings=readings_out(device.readings) or {},
        s_ago=round(max(0.0, now - max(heard for _, heard in device.readings)), 1),
    )
