"""Backend calls that end at their deadline, whatever the radio does.

A controller that stops answering must not stretch a caller's deadline: bumble, for one, waits
10 s for an HCI command it cannot get through, and a cancelled connect sends a cancel command
that waits the same. So each backend call runs in its own task. At the deadline (or when the
radio is lost) the task is cancelled and given a short grace to clean up; if it still has not
finished it is abandoned to finish in the background, and the caller gets its answer on time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger("mcp_ble")
T = TypeVar("T")

#: How long a cancelled backend call may take to clean up before it is left to finish alone.
CANCEL_GRACE_S = 0.2


class RadioLostDuringCall(Exception):
    """The radio was lost while the call was under way."""


class Abandoned:
    """Backend calls cancelled at their deadline that have not finished yet. Holding them keeps
    them from being garbage-collected mid-cleanup; each leaves the set when it ends."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.total = 0

    def add(self, task: asyncio.Task[Any], what: str) -> None:
        if task.done():
            _consume(task)
            return
        task.cancel()
        self.total += 1
        self.tasks.add(task)

        def finished(done: asyncio.Task[Any]) -> None:
            self.tasks.discard(done)
            _consume(done)
            log.debug("abandoned %s finished", what)

        task.add_done_callback(finished)

    async def close(self, timeout_s: float = 1.0) -> None:
        """Wait a little for the stragglers, then give up on them."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout_s)


def _consume(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished task's outcome so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


async def bounded(
    call: Callable[[], Awaitable[T]],
    timeout_s: float,
    lost: asyncio.Future[str] | None,
    abandoned: Abandoned,
    what: str,
) -> T:
    """``await call()`` for at most ``timeout_s`` (plus ``CANCEL_GRACE_S`` of cleanup).

    Raises ``TimeoutError`` at the deadline and :class:`RadioLostDuringCall` when ``lost``
    resolves first. A call that completes during its cleanup grace returns its result: it was
    done, so the caller hears so."""
    task: asyncio.Task[T] = asyncio.ensure_future(call())  # type: ignore[arg-type]
    waiting: set[asyncio.Future[Any]] = {task} if lost is None else {task, lost}
    try:
        await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        abandoned.add(task, what)
        raise
    if task.done():
        return task.result()
    radio_lost = lost is not None and lost.done()
    task.cancel()
    try:
        await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
    except asyncio.CancelledError:
        abandoned.add(task, what)
        raise
    if not task.done():
        abandoned.add(task, what)
    elif not task.cancelled() and task.exception() is None:
        return task.result()
    else:
        _consume(task)
    if radio_lost:
        assert lost is not None
        raise RadioLostDuringCall(lost.result())
    raise TimeoutError
