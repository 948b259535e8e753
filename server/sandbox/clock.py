"""Simulated time: every sandbox delay is in simulated seconds on one clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

__all__ = ["SimClock"]


class SimClock:
    """Simulated seconds since the sandbox started, running `speed` times faster than real time.

    State is derived from the clock when it is read (an instance created at t=0 whose start
    takes 150 s is running when `now() >= 150`), so nothing needs a background task and a fast
    clock makes a test of a ten-minute provisioning take milliseconds.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"Sandbox speed must be positive, got {speed!r}.")
        self.speed = speed
        self._origin = time.monotonic()
        self._wall_origin = datetime.now(timezone.utc)
        self._skipped = 0.0

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.speed + self._skipped

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward (a test's "and an hour later")."""
        self._skipped += seconds

    def wall(self, at: float | None = None) -> datetime:
        """The simulated wall-clock time of simulated second `at` (default: now)."""
        return self._wall_origin + timedelta(seconds=self.now() if at is None else at)

    def iso(self, at: float | None = None) -> str:
        return self.wall(at).isoformat(timespec="milliseconds").replace("+00:00", "Z")
