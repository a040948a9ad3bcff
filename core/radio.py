"""Radio health: whether the backend's adapter (a USB dongle, an HCI bridge, BlueZ over D-Bus)
is there, and getting it back when it went away.

A backend reports a lost radio with :meth:`RadioHealth.lost`. From then on the core fails every
call at once with ``backend_unavailable`` instead of letting each wait out a controller that will
never answer, ends the links and subscriptions the radio carried, and the backend re-acquires the
radio in the background with exponential backoff on its own clock. Once that succeeds the state is
``ready`` again and the server goes on without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from .errors import BackendUnavailable

log = logging.getLogger("mcp_ble.radio")

RadioState = Literal["ready", "lost", "recovering"]
StateListener = Callable[[RadioState, str], None]
Sleep = Callable[[float], Awaitable[None]]

#: First wait before re-acquiring a lost radio, its growth factor and its cap (seconds).
RECOVERY_FIRST_S = 0.25
RECOVERY_FACTOR = 2.0
RECOVERY_MAX_S = 5.0
#: One re-acquire attempt may take this long before it counts as failed.
RECOVERY_ATTEMPT_S = 10.0


class RadioHealth:
    """The state of one backend's radio, what changed it, and the recovery under way."""

    def __init__(self) -> None:
        #: The radio's name when several serve (core/fleet.py); "" for the only one.
        self.name = ""
        self.state: RadioState = "ready"
        self.reason = ""
        self.since = time.monotonic()
        #: How often the radio was lost since the backend started.
        self.losses = 0
        #: Re-acquire attempts made during the current loss.
        self.attempts = 0
        self.listeners: list[StateListener] = []
        self._signal: asyncio.Future[str] | None = None
        self._recovery: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def _set(self, state: RadioState, reason: str) -> None:
        if state == self.state and reason == self.reason:
            return
        self.state, self.reason, self.since = state, reason, time.monotonic()
        for listener in list(self.listeners):
            try:
                listener(state, reason)
            except Exception:
                log.exception("radio state listener failed")

    def lost(self, reason: str, reacquire: Callable[[], Awaitable[None]], sleep: Sleep) -> None:
        """The radio is gone: tell the listeners, wake every call waiting on it, and start
        re-acquiring it with ``reacquire`` (which raises while the radio is still absent),
        waiting between attempts with ``sleep`` (the backend's clock). Called on the loop; a
        second report during the same loss changes nothing."""
        if not self.ready:
            return
        self.losses += 1
        self.attempts = 0
        log.warning("radio %slost: %s", f"{self.name} " if self.name else "", reason)
        self._set("lost", reason)
        signal, self._signal = self._signal, None
        if signal is not None and not signal.done():
            signal.set_result(reason)
        self._recovery = asyncio.get_running_loop().create_task(
            self._recover(reason, reacquire, sleep)
        )

    def wait_lost(self) -> asyncio.Future[str]:
        """A future that resolves (with the reason) when the radio is next lost. One shared
        future per loss, so waiting costs nothing per call."""
        if self._signal is None:
            self._signal = asyncio.get_running_loop().create_future()
        return self._signal

    async def _recover(
        self, reason: str, reacquire: Callable[[], Awaitable[None]], sleep: Sleep
    ) -> None:
        delay = RECOVERY_FIRST_S
        while True:
            await sleep(delay)
            self.attempts += 1
            self._set("recovering", reason)
            try:
                async with asyncio.timeout(RECOVERY_ATTEMPT_S):
                    await reacquire()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = getattr(exc, "what", None) or f"{type(exc).__name__}: {exc}"
                log.info("radio still unavailable (attempt %d): %s", self.attempts, detail)
                delay = min(delay * RECOVERY_FACTOR, RECOVERY_MAX_S)
                continue
            log.warning("radio back after %d attempt(s)", self.attempts)
            self._recovery = None
            self._set("ready", "")
            return

    def unavailable(self) -> BackendUnavailable:
        """The error every call gets while the radio is not ready."""
        down = time.monotonic() - self.since
        if self.state == "recovering":
            doing = f"re-acquiring it (attempt {self.attempts})"
        else:
            doing = "it will be re-acquired automatically"
        radio = f"radio {self.name}" if self.name else "radio"
        return BackendUnavailable(
            f"The {radio} is {self.state} ({self.reason}) for {down:.1f} s; {doing}",
            "wait and retry: ble_status shows radio ready again once it is back; links and "
            "subscriptions were ended and must be made again",
        )

    async def close(self) -> None:
        """Stop re-acquiring (the backend is stopping)."""
        task, self._recovery = self._recovery, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def summary(self) -> str:
        """``ready``, or ``lost: <reason>`` / ``recovering: <reason>``."""
        return self.state if self.ready else f"{self.state}: {self.reason}"
