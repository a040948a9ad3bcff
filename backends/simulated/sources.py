"""What the simulated devices send over time: characteristic values from their generators
(``ValueSource``) and advertised data from ``[[devices.adverts]]`` (``AdvertSchedule``).

The simulated backend and the bumble test bed both use them, so a world behaves the same on both.
"""

from __future__ import annotations

import bisect
import math
import random
import struct

from .world import FORMATS, Characteristic, Device


class ValueSource:
    """Produces a characteristic's bytes from its generator, a fixed value or text."""

    def __init__(self, spec: Characteristic, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        gen = spec.generator
        self.current = (gen.start if gen.start is not None else gen.value) if gen else 0.0
        if spec.value is not None:
            self.fixed: bytes | None = spec.value
        elif spec.text is not None:
            self.fixed = spec.text.encode()
        elif gen is None:
            self.fixed = b""
        else:
            self.fixed = None

    def sample(self, t: float) -> bytes:
        """The value at simulated time ``t`` (seconds); advances counters and walks."""
        if self.fixed is not None:
            return self.fixed
        gen = self.spec.generator
        assert gen is not None
        if gen.kind == "constant":
            number = gen.value
        elif gen.kind == "counter":
            number = self.current
            nxt = self.current + gen.step
            if nxt > gen.max:  # wraps around, like a sequence number (or a battery replaced)
                nxt = gen.min if math.isfinite(gen.min) else (gen.start or 0.0)
            elif nxt < gen.min:
                nxt = gen.max if math.isfinite(gen.max) else (gen.start or 0.0)
            self.current = nxt
        elif gen.kind == "random_walk":
            self.current = min(
                gen.max, max(gen.min, self.current + self.rng.uniform(-gen.step, gen.step))
            )
            number = self.current
        else:  # sine
            base = gen.start if gen.start is not None else gen.value
            number = base + gen.amplitude * math.sin(2 * math.pi * t / gen.period_s)
        return self.spec.prefix + encode_number(number, self.spec.format, self.spec.scale)

    def store(self, data: bytes) -> None:
        """A write replaces the value (the generator, if any, stops)."""
        self.fixed = data


def encode_number(number: float, fmt: str, scale: float) -> bytes:
    if fmt == "utf8":
        return f"{number:g}".encode()
    raw = round(number / scale)
    if fmt == "uint24":
        return max(0, min(raw, 0xFFFFFF)).to_bytes(3, "little")
    code = FORMATS[fmt]
    assert code is not None
    if fmt == "float32":
        return struct.pack(code, number / scale)
    bits = struct.calcsize(code) * 8
    if code[1].islower():
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return struct.pack(code, max(lo, min(raw, hi)))


class AdvertSchedule:
    """The manufacturer and service data a device advertises at simulated time ``t``.

    Without ``adverts`` it is the device's fixed data. With them, entry ``i`` holds from the sum
    of the earlier ``for_s`` on, and the list repeats. Each entry's data is merged once, so the
    advertisements of one entry share their dictionaries, as a controller reuses its buffer."""

    def __init__(self, spec: Device) -> None:
        company, service = spec.company_data(), dict(spec.service_data)
        self.payloads: list[tuple[dict[int, bytes], dict[str, bytes]]] = []
        self.starts: list[float] = []
        self.period = 0.0
        for entry in spec.adverts:
            self.starts.append(self.period)
            self.period += entry.for_s
            ids = {int(key, 0): data for key, data in entry.manufacturer_data.items()}
            self.payloads.append(({**company, **ids}, {**service, **entry.service_data}))
        if not self.payloads:
            self.payloads.append((company, service))

    @property
    def changes(self) -> bool:
        return len(self.payloads) > 1

    def index(self, t: float) -> int:
        if len(self.payloads) == 1:
            return 0
        return bisect.bisect_right(self.starts, t % self.period) - 1

    def at(self, t: float) -> tuple[dict[int, bytes], dict[str, bytes]]:
        """(manufacturer data by company id, service data by UUID) at time ``t``."""
        return self.payloads[self.index(t)]

    def next_change(self, t: float) -> float:
        """The first time after ``t`` the next entry starts (infinite if nothing changes)."""
        if len(self.payloads) == 1:
            return math.inf
        cycle = math.floor(t / self.period) * self.period
        i = self.index(t) + 1
        return cycle + (self.starts[i] if i < len(self.starts) else self.period)
