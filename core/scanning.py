"""Parallel scanning: concurrent scan requests share one radio scan.

A radio has one receiver. Two agents asking for a 5-second scan at once would, queued, wait 10
seconds; here both listen to the same radio scan and finish together in 5. The broker runs the
radio while any request is listening (extending the scan when a later request needs more time), and
feeds every advertisement once through the tracker; each request keeps its own filter, its own
matches and its own stopping rules (``stop_after``, ``quiet_s``). ``server.max_concurrent_scans``
bounds how many requests share the radio at once;
others wait for a place.

Durations are on the backend's clock (``Backend.now``), so simulated scans stop in simulated time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import BleError, BleTimeout
from .models import ScanFilter
from .plans import ScanPlan
from .tracker import DeviceRecord

if TYPE_CHECKING:
    from .app import BleApp

log = logging.getLogger("mcp_ble.scan")


class ScanRequest:
    """One caller's view of the shared scan."""

    __slots__ = ("done", "end", "heard", "last_new", "matched", "plan", "started")

    def __init__(self, plan: ScanPlan, now: float) -> None:
        self.plan = plan
        self.started = now
        self.end = now + plan.duration_s
        self.last_new = now
        self.matched: dict[str, DeviceRecord] = {}
        self.heard = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)

    def offer(self, record: DeviceRecord, now: float, radio_end: float) -> bool:
        """Consider one merged record; return True when this request is complete.

        A request that ends with the radio scan ends when the scan's stream does, so a late
        delivery of an advertisement heard in time still counts; one that ends earlier than
        the shared radio scan ends by the clock."""
        self.heard += 1
        plan = self.plan
        if plan.until is not None and plan.until():
            return True
        if record.address not in self.matched and plan.scan_filter.matches(record):
            self.matched[record.address] = record
            self.last_new = now
            if plan.stop_after is not None and len(self.matched) >= plan.stop_after:
                n = plan.stop_after
                plan.note(f"stopped after {n} matching device{'s' if n > 1 else ''}")
                return True
        elif plan.quiet_s is not None and self.matched and now - self.last_new > plan.quiet_s:
            plan.note(f"stopped early: no new device for {plan.quiet_s:g} s")
            return True
        return self.end < radio_end and now >= self.end


class ScanBroker:
    """Runs the radio for whoever is listening."""

    def __init__(self, app: BleApp, max_concurrent: int) -> None:
        self.app = app
        self.active: list[ScanRequest] = []
        self.places = asyncio.Semaphore(max_concurrent)
        self.radio_scans = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def scanning(self) -> bool:
        """Whether the radio is scanning for someone right now."""
        return self._task is not None and not self._task.done()

    async def scan(self, plan: ScanPlan, background: bool = False) -> ScanRequest:
        """Listen with ``plan`` on the shared radio scan. A ``background`` listener (the server's
        own, :mod:`.sensor_watch`) takes no place of ``server.max_concurrent_scans``."""
        async with contextlib.nullcontext() if background else self.places:
            clock = self.app.radio.now
            request = ScanRequest(plan, clock())
            self.active.append(request)
            loop = asyncio.get_running_loop()
            if self._task is None or self._task.done():
                self._task = loop.create_task(self._run())
            else:
                self._wake.set()  # the running scan may need to last longer
            timer = loop.create_task(self._end_on_time(request))
            safety = max(60.0, 10 * plan.duration_s)
            try:
                async with asyncio.timeout(safety):
                    await asyncio.shield(request.done)
            except TimeoutError:
                raise BleTimeout(
                    f"The {self.app.backend_name} backend did not end a "
                    f"{plan.duration_s:g} s scan in time",
                    "run 'mcp-ble doctor'; the adapter may be stuck",
                ) from None
            finally:
                timer.cancel()
                with contextlib.suppress(ValueError):
                    self.active.remove(request)
                if not self.active and self._task is not None and not self._task.done():
                    self._task.cancel()  # nobody listens any more (the caller went away)
            return request

    async def _end_on_time(self, request: ScanRequest) -> None:
        """End a request at its own end while the radio scans on for a longer one. Otherwise it
        would end only with the next advertisement offered to it, late when the air is quiet.
        A request that lasts as long as the radio scan ends with the scan's stream instead."""
        radio = self.app.radio
        while not request.done.done():
            await radio.sleep_background(max(request.end - radio.now(), 0.0))
            if request.done.done():
                return
            pending = [r for r in self.active if not r.done.done()]
            if radio.now() >= request.end and max(r.end for r in pending) > request.end:
                request.finish()
                return
            if radio.now() >= request.end:
                return  # the longest listener: the stream ends it

    def _filter_hint(self) -> ScanFilter:
        """The backend may pre-filter only when every listener wants the same thing."""
        filters = {_key(r.plan.scan_filter) for r in self.active}
        if len(filters) == 1:
            return self.active[0].plan.scan_filter
        return ScanFilter()

    async def _run(self) -> None:
        app = self.app
        clock = app.radio.now
        try:
            while True:
                pending = [r for r in self.active if not r.done.done()]
                if not pending:
                    return
                radio_end = max(r.end for r in pending)
                remaining = radio_end - clock()
                if remaining <= 0:
                    for request in pending:
                        request.finish()
                    continue
                self.radio_scans += 1
                self._wake.clear()
                stream = app.radio.scan(remaining, self._filter_hint())
                try:
                    exhausted = await self._consume(stream, clock, radio_end)
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
                if exhausted:  # the radio scan ran its full length: its listeners are done
                    for request in self.active:
                        if request.end <= radio_end:
                            request.finish()
        except BleError as exc:
            for request in self.active:
                request.finish(exc)
        except Exception as exc:  # a backend bug must reach the callers as a readable error
            log.exception("scan failed in the %s backend", app.backend_name)
            error = BleError(
                f"The {app.backend_name} backend failed while scanning: "
                f"{type(exc).__name__}: {exc}",
                "retry; if it persists run 'mcp-ble doctor' and check the server log",
            )
            for request in self.active:
                request.finish(error)

    async def _consume(self, stream: Any, clock: Callable[[], float], radio_end: float) -> bool:
        """Feed the stream to the tracker and the listeners. True if the stream ran out; False
        if it was cut short (every listener done, or a new listener needs a longer scan)."""
        tracker = self.app.tracker
        hook = self.app.hook.mcp_ble_advertisement if self.app.adv_hook else None
        sensors = self.app.sensors if self.app.sensors.enabled else None
        active = self.active
        async for adv in stream:
            record, new = tracker.ingest(adv)
            if hook is not None:
                hook(advertisement=adv, record=record, new=new)
            now = clock()
            if sensors is not None:
                sensors.ingest(adv, now)
            finished = False
            for request in active:
                if not request.done.done() and request.offer(record, now, radio_end):
                    request.finish()
                    finished = True
            if finished and all(r.done.done() for r in active):
                return False
            if self._wake.is_set():
                self._wake.clear()
                if max(r.end for r in active) > radio_end:
                    return False  # restart the radio scan for the longer request
        return True


def _key(f: ScanFilter) -> tuple[Any, ...]:
    return (f.name, f.service_uuid, f.min_rssi, f.manufacturer_id, f.address)
