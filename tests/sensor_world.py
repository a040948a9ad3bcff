"""A world file broadcasting every advertisement vector of tests/sensor_vectors.py, plus two
BTHome sensors for the timeline tests: ``CHANGER`` (payload A for 10 s, then B for 10 s, and so
on), ``FADING`` (out of range from 14 s) and ``SPLIT`` (its temperature for 9 s, then its humidity
in another packet for 21 s, as Xiaomi sensors send their values). Used on the simulated backend
and the test bed."""

from __future__ import annotations

import json

from tests.sensor_vectors import VECTORS, Vector

CHANGER = "C0:FF:EE:5E:00:01"
FADING = "C0:FF:EE:5E:00:02"
SPLIT = "C0:FF:EE:5E:00:03"
PAYLOAD_A = "4002ca0903bf13"  # bthome-ble's vector: 25.06 °C, 50.55 %
PAYLOAD_B = "4002660803 9411"  # the same format (bthome.io): 21.5 °C, 45 %


def device_table(vector: Vector) -> str:
    lines = ["[[devices]]", f'address = "{vector.address}"', "adv_interval_ms = 100"]
    if vector.name:
        lines.append(f"name = {json.dumps(vector.name)}")
    if vector.service_uuids:
        lines.append(f"service_uuids = {json.dumps(list(vector.service_uuids))}")
    if vector.manufacturer_data:
        pairs = ", ".join(f'"0x{c:04x}" = "{d.hex()}"' for c, d in vector.manufacturer_data.items())
        lines.append(f"manufacturer_data = {{ {pairs} }}")
    if vector.service_data:
        pairs = ", ".join(f'"{u}" = "{d.hex()}"' for u, d in vector.service_data.items())
        lines.append(f"service_data = {{ {pairs} }}")
    return "\n".join(lines)


def world_text() -> str:
    assert len({v.address for v in VECTORS}) == len(VECTORS)
    tables = [device_table(v) for v in VECTORS]
    tables.append(
        f'[[devices]]\naddress = "{CHANGER}"\nname = "Changer"\nadv_interval_ms = 200\n'
        f'[[devices.adverts]]\nfor_s = 10\nservice_data = {{ "fcd2" = "{PAYLOAD_A}" }}\n'
        f'[[devices.adverts]]\nfor_s = 10\nservice_data = {{ "fcd2" = "{PAYLOAD_B}" }}'
    )
    tables.append(
        f'[[devices]]\naddress = "{FADING}"\nname = "Fading"\nadv_interval_ms = 200\n'
        f'service_data = {{ "fcd2" = "{PAYLOAD_B}" }}\n'
        "[devices.faults]\nout_of_range_at_s = 14"
    )
    tables.append(
        f'[[devices]]\naddress = "{SPLIT}"\nname = "Split"\nadv_interval_ms = 200\n'
        '[[devices.adverts]]\nfor_s = 9\nservice_data = { "fcd2" = "4002ca09" }\n'
        '[[devices.adverts]]\nfor_s = 21\nservice_data = { "fcd2" = "4003bf13" }'
    )
    return 'name = "sensors"\nseed = 5\n\n' + "\n\n".join(tables) + "\n"
