"""IEEE 11073-20601 SFLOAT and FLOAT, as the Bluetooth GATT Specification Supplement defines
them (GSS §2.4 "medfloat16" and "medfloat32"), for the characteristics that carry them.

bluetooth-sig 0.6 reads and writes their exponent with a bias (8 for SFLOAT, 128 for FLOAT)
instead of as the signed two's-complement integer the standard defines, so 0xFF00016C, the
FLOAT in a Health Thermometer's Temperature Measurement for 36.4 °C (mantissa 364, exponent
-1), came out as 3.64e129. :func:`install` puts these functions in place of the library's four
(its characteristics call them through the class), so every characteristic that uses them —
Temperature Measurement, Blood Pressure, Glucose, Pulse Oximeter, Weight and others — reads and
writes the right value. Reserved mantissas are the special values NaN, NRes, +INF and -INF.
"""

from __future__ import annotations

import math
from typing import Any

#: Reserved mantissas: NaN, NRes, +INF, -INF (in that order; the first three are written).
_SFLOAT_SPECIAL = {0x07FF: math.nan, 0x0800: math.nan, 0x07FE: math.inf, 0x0802: -math.inf}
_FLOAT_SPECIAL = {0x7FFFFF: math.nan, 0x800000: math.nan, 0x7FFFFE: math.inf, 0x800002: -math.inf}


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def _decode(raw: int, mantissa_bits: int, exponent_bits: int, special: dict[int, float]) -> float:
    mantissa = raw & ((1 << mantissa_bits) - 1)
    if mantissa in special or mantissa == (1 << (mantissa_bits - 1)) + 1:  # +1: reserved
        return special.get(mantissa, math.nan)
    exponent = _signed(raw >> mantissa_bits, exponent_bits)
    value = _signed(mantissa, mantissa_bits) * 10.0**exponent
    # 10.0 ** -1 is not exact: round to the digits the exponent gives (364e-1 -> 36.4)
    return round(value, -exponent) if exponent < 0 else value


def _encode(value: float, mantissa_bits: int, exponent_bits: int, special: dict[int, float]) -> int:
    if math.isnan(value) or math.isinf(value):
        nan, _, positive, negative = special
        return nan if math.isnan(value) else positive if value > 0 else negative
    limit = (1 << (mantissa_bits - 1)) - 3  # the top mantissas are reserved
    low, high = -(1 << (exponent_bits - 1)), (1 << (exponent_bits - 1)) - 1
    fits = [e for e in range(low, high + 1) if abs(round(value / 10.0**e)) <= limit]
    if not fits:
        raise ValueError(f"{value} is out of range for an IEEE 11073 FLOAT")
    exact = [e for e in fits if math.isclose(round(value / 10.0**e) * 10.0**e, value)]
    # the fewest digits that hold the value exactly (36.4: 364e-1), else the most digits
    exponent = 0 if value == 0 else max(exact) if exact else min(fits)
    mantissa = round(value / 10.0**exponent)
    return (mantissa & ((1 << mantissa_bits) - 1)) | (
        (exponent & ((1 << exponent_bits) - 1)) << mantissa_bits
    )


def parse_sfloat(data: bytes | bytearray, offset: int = 0) -> float:
    if len(data) < offset + 2:
        raise ValueError(f"an SFLOAT needs 2 bytes at offset {offset}; {len(data)} in all")
    return _decode(int.from_bytes(data[offset : offset + 2], "little"), 12, 4, _SFLOAT_SPECIAL)


def parse_float32(data: bytes | bytearray, offset: int = 0) -> float:
    if len(data) < offset + 4:
        raise ValueError(f"a FLOAT needs 4 bytes at offset {offset}; {len(data)} in all")
    return _decode(int.from_bytes(data[offset : offset + 4], "little"), 24, 8, _FLOAT_SPECIAL)


def encode_sfloat(value: float) -> bytearray:
    return bytearray(_encode(value, 12, 4, _SFLOAT_SPECIAL).to_bytes(2, "little"))


def encode_float32(value: float) -> bytearray:
    return bytearray(_encode(value, 24, 8, _FLOAT_SPECIAL).to_bytes(4, "little"))


def install(parser: Any) -> None:
    """Replace the library's four (``IEEE11073Parser``'s static methods) with these."""
    for function in (parse_sfloat, parse_float32, encode_sfloat, encode_float32):
        setattr(parser, function.__name__, staticmethod(function))
