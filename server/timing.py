"""When a schedule runs: a crontab expression or a fixed interval, in a timezone.

`make_timing` checks a schedule's arguments when it is declared, so a typo fails at import with
the fix, not at 3 a.m. Crontab day-of-week numbers mean what crontab says (0 and 7 are Sunday),
though APScheduler 3 counts them from Monday: they are translated to day names.
"""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

__all__ = ["Timing", "duration_text", "make_timing"]

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class Timing:
    """When a schedule runs: a crontab expression or a fixed interval, in a timezone."""

    cron: str | None
    every: timedelta | None
    timezone: str
    misfire_grace: int | None  # seconds; None: a missed run always runs late

    @property
    def spec(self) -> str:
        """A fingerprint: a stored job whose spec differs was defined differently."""
        what = f"cron {self.cron}" if self.cron else f"every {self.every.total_seconds():g}s"  # type: ignore[union-attr]
        return f"{what} tz={self.timezone} grace={self.misfire_grace}"

    def describe(self) -> str:
        if self.cron:
            return f"cron {self.cron} ({self.timezone})"
        return f"every {duration_text(self.every.total_seconds())}"  # type: ignore[union-attr]

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.every is not None:
            return IntervalTrigger(seconds=self.every.total_seconds(), timezone=self.timezone)
        fields = self.cron.split()  # type: ignore[union-attr]
        if len(fields) == 5:
            fields = ["0", *fields]
        second, minute, hour, day, month, weekday = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_crontab_weekdays(weekday),
            timezone=self.timezone,
        )


def duration_text(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler names.

    In crontab 0 (and 7) is Sunday; APScheduler 3 counts from Monday, so numbers are translated
    to day names (ranges and steps expanded) rather than passed through.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = 0, 6
        elif "-" in base:
            low, high = base.split("-", 1)
            start, end = _weekday(low), _weekday(high)
            if end == 0 and start > 0:
                end = 7  # "5-7", "fri-sun": up to Sunday
        else:
            start = end = _weekday(base)
        if step < 1 or start > end:
            raise ValueError(f"day-of-week {item!r} is not a valid range")
        days.update(day % 7 for day in range(start, end + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text) % 7 if text != "7" else 7
    if text[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(text[:3])
    raise ValueError(f"day-of-week {text!r} is not 0-7 or a day name")


def make_timing(
    cron: str | None,
    every: timedelta | None,
    timezone_name: str,
    misfire_grace_time: float | None,
) -> Timing:
    """Check a schedule's arguments and build its `Timing`; raise ValueError naming the fix."""
    if (cron is None) == (every is None):
        raise ValueError(
            "Give a schedule exactly one of cron='m h dom mon dow' or every=timedelta."
        )
    try:
        zoneinfo.ZoneInfo(timezone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown timezone {timezone_name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'."
        ) from None
    if misfire_grace_time is not None:
        if misfire_grace_time <= 0:
            raise ValueError("misfire_grace_time must be a positive number of seconds, or None.")
        misfire_grace_time = math.ceil(misfire_grace_time)  # APScheduler counts whole seconds
    if every is not None:
        if not isinstance(every, timedelta) or every.total_seconds() <= 0:
            raise ValueError(f"every must be a positive datetime.timedelta, got {every!r}.")
        timing = Timing(None, every, timezone_name, misfire_grace_time)
    else:
        assert cron is not None
        fields = cron.split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"cron={cron!r} needs 5 fields (minute hour day month weekday), or 6 with "
                "seconds first."
            )
        timing = Timing(" ".join(fields), None, timezone_name, misfire_grace_time)
    try:
        timing.trigger()
    except ValueError as exc:
        raise ValueError(f"cron={cron!r} is not valid: {exc}") from None
    return timing
