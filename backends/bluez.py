"""What the BlueZ-based backends need from a Linux system, as ``mcp-ble doctor`` findings."""

from __future__ import annotations

import sys
from pathlib import Path

from mcp_ble.core.traits import Finding


def bluez_checks() -> list[Finding]:
    """The D-Bus system bus (BlueZ is reached through it) and the kernel's adapters; nothing
    off Linux."""
    if not sys.platform.startswith("linux"):
        return []
    findings = []
    bus = Path("/run/dbus/system_bus_socket")
    if bus.exists():
        findings.append(Finding("system", "D-Bus system bus", "ok", str(bus)))
    else:
        findings.append(
            Finding(
                "system",
                "D-Bus system bus",
                "problem",
                f"{bus} is missing: bleak and simplepyble reach BlueZ through it",
                "install and start dbus and bluez (sudo apt install bluez; sudo systemctl "
                "start bluetooth); in a container, mount /run/dbus from the host",
            )
        )
    sysfs = Path("/sys/class/bluetooth")
    adapters = sorted(p.name for p in sysfs.iterdir()) if sysfs.is_dir() else []
    if adapters:
        findings.append(Finding("system", "kernel Bluetooth adapters", "ok", ", ".join(adapters)))
    else:
        findings.append(
            Finding(
                "system",
                "kernel Bluetooth adapters",
                "problem",
                "none in /sys/class/bluetooth",
                "plug in a Bluetooth adapter (or check `rfkill list`); the bumble backend can "
                "also drive a USB dongle directly",
            )
        )
    return findings
