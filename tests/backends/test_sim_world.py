"""World files: the bundled worlds, crowds, and clear errors (file and key, exit code 2)."""

from __future__ import annotations

import pytest

from mcp_ble.backends.simulated.world import bundled_worlds, load_world
from mcp_ble.core.cli import main
from mcp_ble.core.errors import ConfigError

GOOD = """
name = "t"
seed = 1
[[devices]]
address = "AA:00:00:00:00:01"
[[devices.services]]
uuid = "180f"
[[devices.services.characteristics]]
uuid = "2a19"
properties = ["read"]
value = "64"
"""


def write(tmp_path, text, name="world.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_world(str(path))
    message = str(info.value)
    assert str(path) in message
    return message


def test_bundled_worlds_load():
    assert {"demo", "crowded", "lab"} <= set(bundled_worlds())
    assert len(load_world("demo").devices) == 7
    crowded = load_world("crowded")
    assert len(crowded.devices) >= 500
    fast = [d for d in crowded.devices if d.adv_interval_ms <= 100]
    assert len(fast) > len(crowded.devices) / 2
    lab = load_world("lab")
    faults = [d.faults for d in lab.devices]
    assert any(f.connect_failure_rate for f in faults)
    assert any(f.errors.in_progress for f in faults)
    assert any(f.errors.aborted for f in faults)
    assert any(f.connect_errors.out_of_slots and f.connect_errors.not_found for f in faults)
    assert any(f.connect_errors.timeout for f in faults)
    assert any(f.disconnect_after_ops for f in faults)
    assert any(f.out_of_range_at_s for f in faults)
    assert any(f.notify_storm_hz for f in faults)
    assert any(f.slow_response_ms for f in faults)
    assert {e.error for f in faults for e in f.gatt_errors} == {0x05, 0x03, 0x0D}
    assert any(d.rssi_drift_db_per_s < 0 for d in lab.devices)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            ('value = "64"', 'value = "64"\ncolour = "red"'),
            ["unknown key 'devices[0] (AA:00:00:00:00:01).services[0].characteristics[0].colour'"],
        ),
        (('uuid = "180f"', 'uuid = "battery"'), ["services[0].uuid", "'battery' is not a UUID"]),
        (('value = "64"', 'value = "6x"'), ["characteristics[0].value", "'6x' is not valid hex"]),
        (("seed = 1", 'seed = 1\n[link]\nphy = "3M"'), ["link.phy", "'1M'"]),
        (("seed = 1", "seed = 1\n[link]\nwindow = 3"), ["unknown key 'link.window'"]),
        (
            ("seed = 1", "seed = 1\n[link]\nconnection_interval_ms = 11"),
            ["link.connection_interval_ms", "not a multiple of 1.25 ms"],
        ),
        (
            ("seed = 1", "seed = 1\n[link]\nscan_interval_ms = 10\nscan_window_ms = 20"),
            ["scan_window_ms must not exceed scan_interval_ms"],
        ),
        (
            (
                "seed = 1",
                "seed = 1\n[link]\nconnection_interval_ms = 60\nsupervision_timeout_ms = 100",
            ),
            ["supervision_timeout_ms = 100 must exceed twice the connection interval (120 ms)"],
        ),
        (
            ('address = "AA:00:00:00:00:01"', 'address = "AA:00:00:00:00:01"\nrssi = 40'),
            ["devices[0] (AA:00:00:00:00:01).rssi", "less than or equal to 20"],
        ),
        (
            (
                "[[devices.services]]",
                "[devices.faults.errors]\nsometimes = 0.1\n[[devices.services]]",
            ),
            ["unknown key 'devices[0] (AA:00:00:00:00:01).faults.errors.sometimes'"],
        ),
        (
            (
                "[[devices.services]]",
                '[[devices.faults.gatt_errors]]\nuuid = "2a19"\nerror = "nope"\n'
                "[[devices.services]]",
            ),
            ["faults.gatt_errors[0].error", "unknown ATT error 'nope'", "insufficient_auth"],
        ),
        (
            (
                "[[devices.services]]",
                "[devices.link]\nconnection_interval_ms = 8\n[[devices.services]]",
            ),
            ["link.connection_interval_ms", "multiple of 1.25"],
        ),
        (
            ("seed = 1", 'seed = 1\n[[crowds]]\ncount = 2\nfirst_address = "AA:00:00:00:00:00"'),
            ["two devices have the address AA:00:00:00:00:01"],
        ),
        (
            (
                "seed = 1",
                'seed = 1\n[[crowds]]\ncount = 2\nfirst_address = "02:00:00:00:00:01"\n'
                "rssi = [-40, -90]",
            ),
            ["crowds[0].rssi", "low end exceeds the high end"],
        ),
    ],
)
def test_invalid_worlds_name_file_and_key(tmp_path, edit, fragments):
    old, new = edit
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new, 1))
    for fragment in fragments:
        assert fragment in message, message


def test_invalid_toml_and_missing_files(tmp_path):
    assert "invalid TOML" in error_of(tmp_path, "name = ")
    with pytest.raises(ConfigError, match="world file not found"):
        load_world(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="not a bundled world"):
        load_world("atlantis")


def test_crowds_expand_deterministically(tmp_path):
    text = """
seed = 9
[[crowds]]
count = 300
first_address = "02:00:00:00:00:FE"
name = "Tag {i}"
adv_interval_ms = [20, 100]
rssi = [-90, -50]
connectable_fraction = 0.25
manufacturer_data = { "0x0059" = "01" }
[[crowds.services]]
uuid = "180f"
[[crowds.services.characteristics]]
uuid = "2a19"
value = "50"
"""
    first = load_world(str(write(tmp_path, text)))
    again = load_world(str(write(tmp_path, text, "again.toml")))
    assert [d.model_dump() for d in first.devices] == [d.model_dump() for d in again.devices]
    assert len(first.devices) == 300 and first.crowds == []
    assert first.devices[0].address == "02:00:00:00:00:FE"
    assert first.devices[2].address == "02:00:00:00:01:00"
    assert first.devices[41].name == "Tag 42"
    assert all(20 <= d.adv_interval_ms <= 100 and -90 <= d.rssi <= -50 for d in first.devices)
    assert 40 < sum(d.connectable for d in first.devices) < 110
    assert first.devices[7].services[0].characteristics[0].value == b"\x50"
    other = load_world(str(write(tmp_path, text.replace("seed = 9", "seed = 10"), "o.toml")))
    assert [d.rssi for d in other.devices] != [d.rssi for d in first.devices]


def test_a_bad_world_ends_the_command_with_exit_code_2(tmp_path, capsys):
    bad = write(tmp_path, GOOD.replace('uuid = "180f"', 'uuid = "battery"'))
    config = write(
        tmp_path,
        f'backend = "simulated"\n[backends.simulated]\nworld = "{bad}"\ntime_scale = 0\n',
        "settings.toml",
    )
    assert main(["scan", "--config", str(config), "--duration", "0.5"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "services[0].uuid" in err and "'battery' is not a UUID" in err
    assert "Traceback" not in err
