"""``mcp-ble bench --only retry``: connects to a flaky device, timed with the retry plugin as
the settings configure it.

The bundled ``lab`` world's Flaky Sensor aborts a third of its connection attempts (BlueZ's
``le-connection-abort-by-local``: no packet in the first six connection events), the failure the
retry plugin's ``initial_delay_s`` applies to. Each run connects and disconnects; the figures are
the connect time (simulated, retries and their waits included) and the share of connects that
failed after every attempt. ``--compare`` two settings files to see what a retry setting costs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ...errors import BleError
from ...models import ScanFilter

if TYPE_CHECKING:
    from ...app import BleApp

FLAKY = "1A:B0:00:00:00:01"


async def flaky_connects(app: BleApp, runs: int) -> tuple[list[float], int]:
    """(connect times, failures) of ``runs`` connects to the Flaky Sensor."""
    await app.scan(3.0, ScanFilter(address=FLAKY), limit=1)
    times: list[float] = []
    failures = 0
    for _ in range(runs):
        start = app.now()
        try:
            await app.connect(FLAKY, 10.0)
        except BleError:
            failures += 1
        times.append(app.now() - start)
        await app.disconnect(FLAKY)
    return times, failures


def results(times: list[float], failures: int, result: Any) -> list[Any]:
    ordered = sorted(times)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]
    return [
        result("retry_connect_time_mean_s", sum(times) / len(times), "s", simulated=True),
        result("retry_connect_time_p95_s", p95, "s", simulated=True),
        result("retry_connect_failed_percent", 100 * failures / len(times), "%", simulated=True),
    ]
