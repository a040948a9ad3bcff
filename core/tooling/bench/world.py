"""The benchmark world ``mcp-ble bench`` writes for each run, and the parameters of a run."""

from __future__ import annotations

from dataclasses import dataclass

TARGET = "BE:0C:00:00:00:01"
TARGET_NAME = "Bench Target"
MTU_TARGET = "BE:0C:00:00:00:02"
#: Candidate ATT MTUs: 23 is the default, 247 fills one 251-byte LL packet with Data Length
#: Extension, and 517 carries a 512-byte attribute (Core spec Vol 3, Part F, 3.2.9) in one PDU.
MTU_CANDIDATES = (23, 185, 244, 247, 517)


@dataclass
class BenchParams:
    runs: int = 10
    transfer_sizes: tuple[int, ...] = (20, 244, 512)
    transfer_ops: int = 20
    stream_bytes: int = 64 * 1024
    notify_window_s: float = 2.0
    device_count: int = 10
    operation_count: int = 100
    concurrent_operations: int = 5
    read_ratio: float = 0.5
    adv_count: int = 200_000
    adv_devices: int = 1_000
    notify_count: int = 200_000
    tracked_devices: int = 10_000
    mcp_calls: int = 400
    soak_ops: int = 50_000
    seed: int = 2026

    @classmethod
    def quick(cls, seed: int = 2026) -> BenchParams:
        return cls(
            transfer_ops=8,
            stream_bytes=16 * 1024,
            notify_window_s=1.0,
            operation_count=50,
            adv_count=40_000,
            notify_count=40_000,
            mcp_calls=150,
            soak_ops=2_000,
            seed=seed,
        )


def _fast_device(address: str, name: str, mtu: int, *keys: str) -> list[str]:
    """A device on the benchmark's fast link: 15 ms interval, 2M PHY, 6 packets per event.
    ``keys`` are more device keys (TOML lines); they must precede its ``[devices.link]`` table."""
    return [
        "[[devices]]",
        f'address = "{address}"',
        f'name = "{name}"',
        "rssi = -55",
        "adv_interval_ms = 100",
        f"mtu = {mtu}",
        *keys,
        "[devices.link]",
        "connection_interval_ms = 15",
        'phy = "2M"',
        "packets_per_event = 6",
    ]


def _fff1(properties: str, *keys: str) -> list[str]:
    """Service fff0 with characteristic fff1 (``properties`` a TOML list; ``keys`` more keys of
    the characteristic), the one every benchmark device has."""
    return [
        "",
        "[[devices.services]]",
        'uuid = "fff0"',
        "",
        "[[devices.services.characteristics]]",
        'uuid = "fff1"',
        f"properties = {properties}",
        *keys,
    ]


def bench_world(params: BenchParams) -> str:
    """The benchmark world as TOML: the target of discovery, connection and transfer (MTU 247,
    2M PHY, 15 ms interval, 6 packets per event), and the load test's devices."""
    lines = [
        'name = "bench"',
        'description = "Written by mcp-ble bench"',
        f"seed = {params.seed}",
        "",
        "[link]",
        "scan_interval_ms = 100",
        "scan_window_ms = 30",
        f"adapter_slots = {max(7, min(64, params.device_count + 1))}",
        "",
        *_fast_device(TARGET, TARGET_NAME, 247, 'service_uuids = ["fff0"]'),
        *_fff1('["read", "write", "write-without-response"]', 'value = "00"'),
        "",
        "[[devices.services.characteristics]]",
        'uuid = "fff2"',
        'properties = ["notify"]',
        'generator = { kind = "counter", start = 0, step = 1, min = 0, max = 255 }',
        f'prefix = "{"a5" * 243}"',
        "notify_hz = 10000",
    ]
    # the MTU sweep's device: it accepts the largest MTU, the adapter's limit decides
    lines += [
        "",
        *_fast_device(MTU_TARGET, "Bench MTU Target", 517),
        *_fff1('["write-without-response"]'),
    ]
    for i in range(1, params.device_count + 1):
        lines += [
            "",
            "[[devices]]",
            f'address = "{load_address(i)}"',
            f'name = "Load {i}"',
            f"rssi = {-50 - i % 30}",
            "adv_interval_ms = 50",
            "",
            "[devices.faults.errors]",
            "in_progress = 0.02",
            *_fff1('["read", "write"]', 'value = "0011223344556677"'),
        ]
    return "\n".join(lines) + "\n"


def load_address(i: int) -> str:
    return f"BE:0D:00:00:{i >> 8:02X}:{i & 0xFF:02X}"
