"""Items from native threads to the event loop: bounded, with one wakeup per burst."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ThreadHandoff(Generic[T]):
    """``put`` from any thread; ``deliver`` runs on the loop for each item, in order.

    A burst of items costs one ``call_soon_threadsafe`` (not one callback, let alone one task, per
    item), and at most ``capacity`` items wait: beyond that new ones are dropped and counted, so a
    notification storm cannot grow memory without bound."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deliver: Callable[[T], None], capacity: int
    ) -> None:
        self._loop = loop
        self._deliver = deliver
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._items) >= self._capacity:
                self.dropped += 1
                return
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.close()

    def _flush(self) -> None:
        with self._lock:
            batch = list(self._items)
            self._items.clear()
            self._scheduled = False
        for item in batch:
            if self._closed:
                return
            self._deliver(item)

    def close(self) -> None:
        """Drop whatever is pending and ignore later items."""
        with self._lock:
            self._closed = True
            self._items.clear()
