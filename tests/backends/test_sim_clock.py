"""Simulated time: the virtual clock's causal order, idle modes, and the scaled clock."""

from __future__ import annotations

import asyncio

import pytest

from mcp_ble.backends.simulated.clock import ScaledClock, VirtualClock
from mcp_ble.core.models import ScanFilter


@pytest.fixture
async def clock():
    c = VirtualClock()
    c.start()
    yield c
    c.stop()


async def test_concurrent_sleepers_wake_in_simulated_time_order(clock):
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    await asyncio.gather(sleeper("c", 30.0), sleeper("a", 10.0), sleeper("b", 20.0))
    assert woke == [("a", 10.0), ("b", 20.0), ("c", 30.0)]
    assert clock.now() == 30.0


async def test_chains_of_waits_interleave_causally(clock):
    log: list[tuple[str, float]] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep(0.1)
            log.append(("tick", round(clock.now(), 9)))

    async def one_shot() -> None:
        await asyncio.sleep(0)  # starts a little later in real time: the order must not care
        await clock.sleep(0.25)
        log.append(("shot", round(clock.now(), 9)))

    await asyncio.gather(ticker(), one_shot())
    assert log == [("tick", 0.1), ("tick", 0.2), ("shot", 0.25), ("tick", 0.3)]


async def test_background_events_fire_in_order_between_waits(clock):
    fired: list[tuple[str, float]] = []
    clock.call_at(0.5, lambda: fired.append(("half", clock.now())))
    clock.call_at(0.2, lambda: fired.append(("fifth", clock.now())))
    cancelled = clock.call_at(0.3, lambda: fired.append(("never", clock.now())))
    cancelled.cancel()
    await clock.sleep(1.0)
    assert fired == [("fifth", 0.2), ("half", 0.5)]
    assert clock.now() == 1.0


async def test_a_minute_of_simulated_time_passes_without_waiting(clock):
    for _ in range(600):
        await clock.sleep(0.1)
    assert clock.now() == pytest.approx(60.0)


async def test_frozen_idle_time_does_not_move_without_a_waiting_operation(clock):
    fired: list[float] = []
    clock.call_at(0.01, lambda: fired.append(clock.now()))
    await asyncio.sleep(0.05)  # real time passes; nobody waits on the radio
    assert fired == [] and clock.now() == 0.0
    await clock.sleep(0.02)
    assert fired == [0.01]


async def test_wall_idle_time_follows_the_wall_clock():
    clock = VirtualClock(idle="wall")
    clock.start()
    try:
        fired = asyncio.Event()
        clock.call_at(0.02, fired.set)
        await asyncio.wait_for(fired.wait(), 5)
        assert clock.now() >= 0.02
        before = clock.now()
        await clock.sleep(100.0)  # an operation still jumps ahead
        assert clock.now() == pytest.approx(before + 100.0, abs=1.0)
    finally:
        clock.stop()


async def test_a_cancelled_wait_leaves_the_clock_working(clock):
    woke: list[str] = []

    async def long_wait() -> None:
        await clock.sleep(5.0)
        woke.append("long")

    async def canceller(task: asyncio.Task[None]) -> None:
        await clock.sleep(1.0)
        task.cancel()

    long = asyncio.ensure_future(long_wait())
    await asyncio.gather(canceller(long), return_exceptions=True)
    with pytest.raises(asyncio.CancelledError):
        await long
    await clock.sleep(10.0)
    assert woke == [] and clock.now() == 11.0


async def test_scaled_clock_stretches_real_time():
    clock = ScaledClock(0.01)
    clock.start()
    fired = asyncio.Event()
    clock.call_at(0.5, fired.set)
    await clock.sleep(1.0)
    assert clock.now() >= 1.0
    assert fired.is_set()
    with pytest.raises(ValueError):
        ScaledClock(0)


@pytest.mark.parametrize("idle", ["frozen", "wall"])
async def test_virtual_idle_setting_between_calls(tmp_path, idle):
    from tests.helpers import make_app

    environ = {"MCP_BLE_BACKENDS__SIMULATED__VIRTUAL_IDLE": idle}
    app = make_app(tmp_path, "plugins = []", time_scale=0, environ=environ)
    hrm = "C4:7C:8D:6A:12:01"  # the demo's heart-rate strap notifies twice a second
    async with app:
        await app.scan(2.0, ScanFilter())
        await app.connect(hrm)
        await app.subscribe(hrm, "2a37")
        _, items = await app.notifications(hrm, "2a37", 10, 0.05)
        if idle == "frozen":
            # Nobody waits on the radio: simulated time stands still, the stream too ...
            assert items == []
            before = app.radio.now()
            await app.read(hrm, "2a38")  # ... until an operation moves time
            await app.radio.clock.sleep(1.0)
            _, items = await app.notifications(hrm, "2a37", 10, 0)
            assert len(items) == 2 and app.radio.now() - before > 1.0
        else:
            _, items = await app.notifications(hrm, "2a37", 10, 5.0)  # arrives in wall time
            assert items
