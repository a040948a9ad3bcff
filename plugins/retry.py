"""Connection retry with exponential backoff.

Decides, per failure, whether and when to try again; the core does the waiting and enforces the
caller's deadline, so a retry never stretches a timeout. Classification follows how real stacks fail
(BlueZ's ``le-connection-abort-by-local``, ``org.bluez.Error.InProgress``, HCI "connection limit
exceeded", Core spec Vol 1, Part F, 0x09): transient errors retry quickly with exponential backoff,
"out of slots" and "device not found" back off for seconds, "operation in progress" retries almost
at once, timeouts and refusals are never retried. With several radios a connect that failed on one
(out of slots, not found or timed out included) goes to the next radio that hears the device after
the transient wait. Writes are not idempotent: they
are never retried unless ``retry_writes`` is set, because a write that timed out may already have
actuated something — except after "operation in progress", which the stack answers before sending
anything.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from mcp_ble.core.errors import BleError, OperationInProgress
from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.plans import Operation


class RetrySettings(BaseModel):
    """``[retry]``"""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(3, ge=1, le=20, description="attempts in all, the first included")
    initial_delay_s: float = Field(0.25, ge=0, le=30, description="wait after the first failure")
    multiplier: float = Field(2.0, ge=1, le=10, description="each later wait is this much longer")
    max_delay_s: float = Field(5.0, ge=0, le=60, description="cap of one wait")
    backoff_delay_s: float = Field(
        4.0, ge=0, le=60, description="wait after 'out of connection slots' or 'device not found'"
    )
    in_progress_delay_s: float = Field(
        0.01, ge=0, le=5, description="wait after 'operation already in progress'"
    )
    jitter: float = Field(0.0, ge=0, le=1, description="random +/- fraction added to each wait")
    operations: list[str] = Field(
        default_factory=lambda: ["connect", "discover", "read", "read_descriptor", "subscribe"],
        description="operation kinds that may be retried",
    )
    retry_writes: bool = Field(
        False, description="also retry writes (unsafe: a write may be applied twice)"
    )


class RetryPolicy:
    """The decision function, separate from pluggy so it can be tested and reused."""

    def __init__(self, settings: RetrySettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()

    def delay(self, operation: Operation, error: BleError, attempt: int) -> float | None:
        s = self.settings
        if attempt >= s.max_attempts:
            return None
        refused_unsent = isinstance(error, OperationInProgress)
        if operation.kind not in s.operations and not refused_unsent:
            return None
        # A write that may have been applied is never repeated; one the stack refused before
        # sending it ("operation already in progress") is safe to send again.
        if not operation.idempotent and not s.retry_writes and not refused_unsent:
            return None
        # A connect that timed out on one of several radios goes to the next one that hears
        # the device (the fleet gave the attempt its share of the time).
        moves_on = operation.kind == "connect" and operation.other_radio
        if error.kind == "fatal" or (error.kind == "timeout" and not moves_on):
            return None
        if isinstance(error, OperationInProgress):
            wait = s.in_progress_delay_s
        elif error.kind == "backoff" and not moves_on:
            wait = s.backoff_delay_s
        else:
            wait = min(s.initial_delay_s * s.multiplier ** (attempt - 1), s.max_delay_s)
        if s.jitter:
            wait *= 1 + self.rng.uniform(-s.jitter, s.jitter)
        # The backend may already have waited (bleak-retry-connector waits for the stack to tear
        # a failed link down); never wait twice for the same reason.
        return max(0.0, wait - error.waited_s)


class RetryPlugin:
    settings_model = RetrySettings
    settings: RetrySettings

    def __init__(self) -> None:
        self.policy: RetryPolicy | None = None

    @hookimpl
    def mcp_ble_startup(self) -> None:
        self.policy = RetryPolicy(self.settings)

    @hookimpl
    def mcp_ble_retry_delay(
        self, operation: Operation, error: BleError, attempt: int
    ) -> float | None:
        if self.policy is None:
            return None
        return self.policy.delay(operation, error, attempt)
