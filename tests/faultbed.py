"""Processes for the fault suite: virtual controllers and a virtual peripheral over TCP HCI.

``python -m bumble.apps.controllers tcp-server:127.0.0.1:A tcp-server:127.0.0.1:B`` puts two
virtual controllers on one link; the peripheral process (``fault_peripheral.py``) opens port A, the
server under test port B. Killing the controllers process is an unplugged dongle, SIGSTOP on it a
controller that stops answering, killing the peripheral a device that vanished.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent
PERIPHERAL_ADDRESS = "C4:FA:17:00:00:01"


# prctl(2) PR_SET_PDEATHSIG: the kernel signals the child when the process that started it exits.
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _dies_with(parent: int) -> Any:
    """A ``preexec_fn`` that has the child killed when the test process ends, however it ends:
    ``stop`` in a teardown does not run when pytest itself is killed (SIGTERM from a timeout,
    SIGKILL), and those children used to outlive it, ports held. Loaded before forking, so the
    child only calls into libc."""
    if _LIBC is None:
        return None
    prctl = _LIBC.prctl

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    """Whether the port accepts connections, without connecting (a connection that closes
    would detach the controller from its real client)."""
    try:
        with open("/proc/net/tcp", encoding="ascii") as handle:
            rows = handle.read().splitlines()[1:]
    except OSError:
        return False
    wanted = f":{port:04X}"
    return any(
        row.split()[1].endswith(wanted) and row.split()[3] == "0A"  # 0A: LISTEN
        for row in rows
    )


class Process:
    """A child process whose stdout lines are collected; killed in ``stop``."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> Process:
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_dies_with(os.getpid()),
        )
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()
        return self

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.strip())

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a stopped process cannot die of SIGKILL's wait
            proc.kill()
        proc.wait(timeout=10)

    def wait_for_line(self, prefix: str, count: int = 1, timeout_s: float = 10.0) -> None:
        end = time.monotonic() + timeout_s
        while sum(line.startswith(prefix) for line in self.lines) < count:
            if time.monotonic() > end:
                raise AssertionError(f"no {count}x {prefix!r} from {self.args}: {self.lines}")
            time.sleep(0.02)


class Controllers(Process):
    """``bumble.apps.controllers`` with two TCP HCI ports: A for the peripheral, B for us (it
    takes exactly two transports)."""

    def __init__(self, port_a: int, port_b: int) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "bumble.apps.controllers",
                f"tcp-server:127.0.0.1:{port_a}",
                f"tcp-server:127.0.0.1:{port_b}",
            ]
        )
        self.ports = (port_a, port_b)

    def start(self) -> Controllers:
        super().start()
        return self.wait_listening()

    def wait_listening(self) -> Controllers:
        end = time.monotonic() + 15
        while not all(_listening(p) for p in self.ports):
            if time.monotonic() > end:
                raise AssertionError("bumble.apps.controllers did not listen within 15 s")
            time.sleep(0.02)
        return self


def peripheral(*ports: int, address: str = PERIPHERAL_ADDRESS) -> Process:
    """The peripheral on the controller at each port (several: one device on several links)."""
    return Process(
        [
            sys.executable,
            str(TESTS / "fault_peripheral.py"),
            ",".join(f"tcp-client:127.0.0.1:{port}" for port in ports),
            address,
        ]
    )
