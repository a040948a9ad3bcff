"""Simulated time: a scaled wall clock, or a virtual clock that jumps.

Both give the backend the same three things: ``now()`` in simulated seconds since start,
``await sleep_until(t)`` for an operation that waits on the radio (a *foreground* wait), and
``call_at(t, callback)`` for what the world does by itself (a *background* event: a notification
going out, a link dropping at a set time).

``ScaledClock`` (time_scale > 0) maps simulated time onto the event loop's clock, stretched by
the scale: 1 is real time, 0.01 a hundred times faster.

``VirtualClock`` (time_scale = 0) is a discrete-event scheduler. Time moves only when every task
that can run has run and some operation is waiting on the radio; it then jumps to the earliest
pending wake-up, so concurrent operations stay causally ordered while a minute of simulated time
passes in milliseconds. Background events fire in order as time passes them. While no operation
waits, time is ``frozen`` (the default: a run is a pure function of the seed and the calls made)
or, with ``idle = "wall"``, runs with the wall clock so that notification streams keep flowing
between calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

log = logging.getLogger("mcp_ble.simulated")

IdleMode = Literal["frozen", "wall"]


class Timer:
    """A background event; ``cancel()`` stops it from firing."""

    __slots__ = ("args", "callback", "cancelled", "handle")

    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()

    def fire(self) -> None:
        if self.cancelled:
            return
        try:
            self.callback(*self.args)
        except Exception:  # one broken event must not stop simulated time
            log.exception("simulated event %r failed", self.callback)


class SimClock(ABC):
    """Simulated time for one backend. ``start`` binds it to the running event loop."""

    virtual = False

    @abstractmethod
    def start(self) -> None: ...

    def stop(self) -> None:  # noqa: B027 - optional
        pass

    @abstractmethod
    def now(self) -> float:
        """Simulated seconds since ``start``."""

    @abstractmethod
    async def sleep_until(self, t: float) -> None:
        """Wait until simulated time ``t`` (an operation waiting on the radio)."""

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + max(0.0, seconds))

    @abstractmethod
    def call_at(self, t: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` on the loop at simulated time ``t`` (or now, if past)."""

    def describe(self) -> str:
        return type(self).__name__


class ScaledClock(SimClock):
    """Simulated time = loop time since start / ``scale``."""

    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("ScaledClock needs a positive scale; use VirtualClock for 0")
        self.scale = scale
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()

    def _running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self.start()
        assert self._loop is not None
        return self._loop

    def now(self) -> float:
        return (self._running().time() - self._t0) / self.scale

    async def sleep_until(self, t: float) -> None:
        delay = (t - self.now()) * self.scale
        await asyncio.sleep(delay if delay > 0 else 0)

    def call_at(self, t: float, callback: Callable[..., Any], *args: Any) -> Timer:
        loop = self._running()
        timer = Timer(callback, args)
        timer.handle = loop.call_at(self._t0 + t * self.scale, timer.fire)
        return timer

    def describe(self) -> str:
        return f"scaled x{self.scale:g}"


class VirtualClock(SimClock):
    """A discrete-event scheduler on the asyncio loop (see the module docstring)."""

    virtual = True
    #: Foreground waits that finish without yielding in a row before we yield anyway, so a long
    #: scan on an otherwise idle loop still lets other tasks (progress reports) run.
    YIELD_EVERY = 64
    #: Rounds of yielding we allow busy tasks before moving time regardless.
    SETTLE_LIMIT = 1000

    def __init__(self, idle: IdleMode = "frozen") -> None:
        self.idle = idle
        self._now = 0.0
        self._queue: list[tuple[float, int, asyncio.Future[None] | Timer]] = []
        self._seq = itertools.count()
        self._waiting = 0
        self._inline = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: Any = None
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        #: (loop time, simulated time) while idle time follows the wall clock.
        self._wall: tuple[float, float] | None = None

    def describe(self) -> str:
        return f"virtual (idle: {self.idle})"

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._runner is not None and not self._runner.done():
            return
        self._loop = loop
        # CPython's loop keeps runnable callbacks in ``_ready``: an empty queue means every task
        # that can run has run. Other loops fall back to yielding a few rounds.
        self._ready = getattr(loop, "_ready", None)
        self._wakeup = asyncio.Event()
        self._runner = loop.create_task(self._run(), name="simulated-clock")

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None
        for _, _, entry in self._queue:
            if isinstance(entry, asyncio.Future):
                if not entry.done():
                    entry.cancel()
            else:
                entry.cancel()
        self._queue.clear()

    def now(self) -> float:
        if self._wall is not None and self._loop is not None:
            wall0, sim0 = self._wall
            t = sim0 + (self._loop.time() - wall0)
            if self._queue and self._queue[0][0] < t:
                t = self._queue[0][0]
            if t > self._now:
                self._now = t
        return self._now

    def _ensure(self) -> None:
        if (
            self._runner is None
            or self._runner.done()
            or self._loop is not asyncio.get_running_loop()
        ):
            self.start()

    def _kick(self) -> None:
        assert self._wakeup is not None
        self._wakeup.set()

    async def sleep_until(self, t: float) -> None:
        self._ensure()
        now = self.now()
        if t <= now:
            return
        ready = self._ready
        if ready is not None and not ready and (not self._queue or self._queue[0][0] > t):
            # Nothing else can run and nothing is due before t: move time now, no round trip.
            self._now = t
            if self._wall is not None:
                assert self._loop is not None
                self._wall = (self._loop.time(), t)
            self._inline += 1
            if self._inline % self.YIELD_EVERY == 0:
                await asyncio.sleep(0)
            return
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        heapq.heappush(self._queue, (t, next(self._seq), future))
        self._waiting += 1
        self._kick()
        try:
            await future
        finally:
            self._waiting -= 1

    def call_at(self, t: float, callback: Callable[..., Any], *args: Any) -> Timer:
        self._ensure()
        timer = Timer(callback, args)
        heapq.heappush(self._queue, (max(t, self._now), next(self._seq), timer))
        if self.idle == "wall":
            self._kick()
        return timer

    async def _settle(self) -> None:
        """Yield until no other task is runnable (each has reached its next wait)."""
        ready = self._ready
        for spins in range(self.SETTLE_LIMIT):
            await asyncio.sleep(0)
            if ready is None:
                if spins >= 8:
                    return
            elif not ready:
                return

    def _fire(self, entry: asyncio.Future[None] | Timer) -> None:
        if isinstance(entry, Timer):
            entry.fire()
        elif not entry.done():
            entry.set_result(None)

    async def _run(self) -> None:
        assert self._wakeup is not None and self._loop is not None
        wakeup, loop = self._wakeup, self._loop
        while True:
            if not self._waiting:
                if self.idle == "wall":
                    await self._idle_wall(wakeup, loop)
                else:
                    wakeup.clear()
                    await wakeup.wait()
                continue
            self.now()  # fold in wall time that passed while idle
            self._wall = None
            await self._settle()
            if not self._waiting or not self._queue:
                continue
            t, _, entry = heapq.heappop(self._queue)
            if t > self._now:
                self._now = t
            self._fire(entry)

    async def _idle_wall(self, wakeup: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        """No operation waits: let simulated time follow the wall clock, firing what falls due."""
        if self._wall is None:
            self._wall = (loop.time(), self._now)
        wakeup.clear()
        delay = self._queue[0][0] - self.now() if self._queue else None
        if delay is None:
            await wakeup.wait()
            return
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wakeup.wait()
        if self._waiting:
            return
        now = self.now()
        while self._queue and self._queue[0][0] <= now and not self._waiting:
            _, _, entry = heapq.heappop(self._queue)
            self._fire(entry)
