"""What a handler can know about the run it is in, and how it can steer retries.

Handlers must be safe to run twice (retries, replays, a crash mid-run): `DeliveryContext` gives
them the delivery id and attempt number to make that easy, e.g. as an idempotency key for the
action they take.

Exceptions a handler may raise on purpose:

    Exception
     +-- RetryLater   try again after `delay` seconds (counts as an attempt)
     +-- GiveUp       do not retry: the job is dead at once, with this message

Any other exception is retried with backoff, unless it says it cannot succeed on retry:
a pydantic `ValidationError`, or an error carrying an HTTP `status_code` of 4xx other than
408, 409, 425 and 429 (the embedded clients' errors do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ValidationError

__all__ = ["DeliveryContext", "GiveUp", "RetryLater", "ScheduledRun", "is_retryable"]

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class DeliveryContext:
    """The delivery (or scheduled run) and attempt a handler runs for; inject it by annotation.

    For a scheduled run, `delivery_id` is the run's id (also `run_id`), `endpoint` is
    ``schedule:<name>``, and `scheduled_for` is the time the run was due (None if started by hand).
    """

    delivery_id: str
    job_id: str
    handler: str
    endpoint: str
    attempt: int
    received_at: float
    scheduled_for: float | None = None

    @property
    def is_retry(self) -> bool:
        return self.attempt > 1

    @property
    def run_id(self) -> str:
        return self.delivery_id


class ScheduledRun(BaseModel):
    """What a scheduled function may ask for about its run (inject it by annotation)."""

    schedule: str
    scheduled_for: datetime | None = None  # when the run was due; None: started by hand
    manual: bool = False
    requested_at: datetime | None = None  # for a run started by hand


class RetryLater(Exception):
    """Raise from a handler to be run again after `delay` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        if delay < 0:
            raise ValueError(f"RetryLater delay must be >= 0 seconds, got {delay!r}.")
        self.delay = float(delay)
        super().__init__(reason or f"retry requested in {delay:g} s")


class GiveUp(Exception):
    """Raise from a handler when retrying cannot help: the job is marked dead at once."""


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt could succeed where this one failed with `exc`."""
    if isinstance(exc, GiveUp):
        return False
    if isinstance(exc, RetryLater):
        return True
    explicit = getattr(exc, "retryable", None)
    if isinstance(explicit, bool):
        return explicit
    if isinstance(exc, ValidationError):
        return False
    code = _status_code(exc)
    return not (code is not None and 400 <= code < 500 and code not in _RETRYABLE_4XX)
