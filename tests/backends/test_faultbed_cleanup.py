"""The fault suite's child processes (virtual controllers, the peripheral) end with the test
process, also when it is killed before any teardown runs (a CI timeout's SIGTERM or SIGKILL):
they used to stay, holding their TCP ports, for every killed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # where the tests package is

STARTER = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from tests.faultbed import Controllers, free_port
controllers = Controllers(free_port(), free_port()).start()
print(controllers.proc.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited (its new parent may not reap it)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_controllers_end_when_the_test_process_is_killed(sig: int) -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    child = int(starter.stdout.readline())
    assert _alive(child)
    os.kill(starter.pid, sig)
    starter.wait(timeout=30)
    end = time.monotonic() + 15
    while _alive(child) and time.monotonic() < end:
        time.sleep(0.05)
    still = _alive(child)
    if still:
        os.kill(child, signal.SIGKILL)
    assert not still, "bumble.apps.controllers outlived the process that started it"
