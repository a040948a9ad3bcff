"""What every bench group uses: the run's settings, a fresh app on the simulated radio, and
scanning until the devices it needs are known."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BleError
from ...models import ScanFilter
from .results import Progress, Result
from .world import BenchParams

if TYPE_CHECKING:
    from ...app import BleApp


@dataclass
class SuiteBase:
    """One run of the benchmarks under one settings file: what every group uses."""

    loaded: Any
    catalog: Any
    params: BenchParams
    world: Path
    progress: Progress
    results: list[Result] = field(default_factory=list)

    def app(self) -> BleApp:
        from ...app import BleApp

        app = BleApp(self.loaded.settings, self.catalog, self.loaded)
        return app

    @staticmethod
    def backend(app: BleApp) -> Any:
        return app.radio

    async def discovered(self, app: BleApp, *addresses: str) -> None:
        """Scan until the given devices are in the tracker (a precondition, not measured)."""
        for _ in range(20):
            if all(app.tracker.get(a) is not None for a in addresses):
                return
            await app.scan(2.0, ScanFilter())
        raise BleError(f"the benchmark world's devices were not heard: {addresses}")

    @staticmethod
    async def _repeat(radio: Any, n: int, op: Callable[[], Awaitable[Any]]) -> list[float]:
        """Run ``op`` back to back; simulated seconds of each (the first aligns to the link)."""
        await op()
        out = []
        for _ in range(n):
            before = radio.now()
            await op()
            out.append(radio.now() - before)
        return out
