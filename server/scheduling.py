"""Timed automations: `@schedule`, APScheduler with its job store in spacehooks' database, and
the leader lock.

    @app.schedule(cron="0 22 * * *", timezone="Europe/Paris")
    def nightly(hub: HubClient, ctx: DeliveryContext) -> None: ...

    @schedule(every=timedelta(minutes=15))        # module-level form, for handlers/
    def sweep(run: ScheduledRun) -> None: ...

Each schedule is an APScheduler job stored in the database (table `spacehooks_schedules`), so its
next run, a pause, and the runs missed while no process was up survive restarts. At start, a run
missed by less than the schedule's misfire grace time happens at once (several missed runs
coalesce into one); an older one is skipped, with a log line.

A run does not execute inside APScheduler: it becomes a delivery in the inbox (endpoint
``schedule:<name>``), and the worker runs its job like a webhook's: the same injection, retries
with backoff, dead letters, every attempt recorded, replay from the console. The delivery's
idempotency key is derived from the schedule and the run's time, so a tick stored twice (a leader
dying between storing a run and recording the next) still runs once.

With PostgreSQL and several processes, only the process holding an advisory lock runs
APScheduler. The others try to take the lock every `SPACEHOOKS_LEADER_INTERVAL` seconds; when
the leader dies its connection closes, the lock goes with it, and another process takes over
within that interval.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import threading
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .context import ScheduledRun
from .db import Database, deliveries, jobs
from .inbox import Incoming
from .routing import Handler

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = [
    "ScheduleState",
    "Scheduled",
    "Scheduler",
    "Timing",
    "act",
    "make_timing",
    "overview",
]

log = logging.getLogger("spacehooks.schedules")

JOB_TABLE = "spacehooks_schedules"
ENDPOINT_PREFIX = "schedule:"
_LEADER_LOCK_KEY = 727275  # pg advisory lock id (create_schema uses 727274)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


# -- what a schedule is --------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Scheduled:
    """A function registered with `schedule`, and when it runs."""

    handler: Handler  # name and path are both "schedule:<name>"
    timing: Timing

    @property
    def name(self) -> str:
        return self.handler.name[len(ENDPOINT_PREFIX) :]


@dataclass(frozen=True)
class ScheduleState:
    """What the console shows for one schedule."""

    name: str
    trigger: str
    next_run: float | None
    paused: bool
    last_run_at: float | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_delivery: str | None = None


def run_request(name: str, scheduled_for: float | None) -> Incoming:
    """The inbox delivery for one run (`scheduled_for` None: started by hand)."""
    run = ScheduledRun(
        schedule=name,
        scheduled_for=(
            None if scheduled_for is None else datetime.fromtimestamp(scheduled_for, timezone.utc)
        ),
        manual=scheduled_for is None,
        # A run by hand is unique; a tick is identified by its time (the idempotency key).
        requested_at=datetime.now(timezone.utc) if scheduled_for is None else None,
    )
    endpoint = ENDPOINT_PREFIX + name
    return Incoming(
        endpoint=endpoint,
        headers={},
        query="",
        body=run.model_dump_json().encode(),
        handlers=(endpoint,),
        scope="schedule",
        action="manual" if scheduled_for is None else "tick",
    )


# -- running schedules ---------------------------------------------------------------------------

#: Starts one run: returns when its first attempt has finished.
Fire = Callable[[str, float | None], Awaitable[Any]]


def _persisted_target(name: str, spec: str) -> None:
    """What stored jobs name as their function. Runs never call it: `_InboxExecutor` turns each
    run into an inbox delivery instead, so the store holds no pickled user code."""
    raise RuntimeError(f"schedule {name!r} must run through spacehooks' scheduler")


def _make_executor(fire: Callable[[str, float], concurrent.futures.Future[Any]]) -> Any:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
    from apscheduler.executors.base import BaseExecutor

    class InboxExecutor(BaseExecutor):  # type: ignore[misc]
        """Hands each due run to the inbox. A job counts as running until its first attempt
        ends, so `max_instances=1` skips a tick while the previous run is still going."""

        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            now = datetime.now(timezone.utc)
            grace = job.misfire_grace_time
            due = [t for t in run_times if grace is None or (now - t).total_seconds() <= grace]
            for missed in (t for t in run_times if t not in due):
                log.warning(
                    "schedule %s: the run due at %s was missed by %.0f s (more than its "
                    "misfire grace time of %s s); skipped",
                    job.id,
                    missed.isoformat(),
                    (now - missed).total_seconds(),
                    grace,
                )
            when = due[-1].timestamp() if due else None
            future = fire(job.id, when) if when is not None else _done_future()
            alias = job._jobstore_alias

            def finished(f: concurrent.futures.Future[Any]) -> None:
                exc = f.exception()
                scheduled = due[-1] if due else now
                if exc is None:
                    event = JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, alias, scheduled)
                    self._run_job_success(job.id, [event])
                else:
                    self._run_job_error(job.id, exc, exc.__traceback__)
                    event = JobExecutionEvent(
                        EVENT_JOB_ERROR, job.id, alias, scheduled, exception=exc
                    )
                    self._scheduler._dispatch_event(event)

            # Called in another thread, after submit_job has counted the instance (its lock).
            future.add_done_callback(lambda f: threading.Thread(target=finished, args=(f,)).start())

    return InboxExecutor()


def _done_future() -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(None)
    return future


class Scheduler:
    """Runs an app's schedules: APScheduler, leading only where the leader lock is held."""

    def __init__(
        self,
        db: Database,
        schedules: list[Scheduled],
        fire: Fire,
        loop: asyncio.AbstractEventLoop,
        *,
        leader_interval: float = 5.0,
    ) -> None:
        self.db = db
        self.schedules = {s.name: s for s in schedules}
        self._fire = fire
        self._loop = loop
        self._interval = leader_interval
        self._aps: Any = None
        self._lock = threading.Lock()
        self._leadership: _Leadership | None = None
        self.started = False

    @property
    def is_leader(self) -> bool:
        return self._aps is not None

    @property
    def running(self) -> bool:
        """Leading, or standing by with its leader election alive."""
        if not self.started:
            return False
        return self._leadership is None or self._leadership.is_alive()

    def start(self) -> None:
        if not self.schedules:
            self.started = True
            return  # nothing to run: no APScheduler, no lock
        if self.db.is_postgres:
            self._leadership = _Leadership(
                self.db, self._interval, self._lead, self._stand_down, self._wakeup
            )
            self._leadership.start()
        else:
            self._lead()  # SQLite serves one process, which is the leader
        self.started = True

    def stop(self) -> None:
        """No new runs from here on (runs in progress are the worker's to finish)."""
        if self._leadership is not None:
            self._leadership.stop()
        else:
            self._stand_down()
        self.started = False

    # -- leading -------------------------------------------------------------------------------

    def _lead(self) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        aps = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.db.engine, tablename=JOB_TABLE)},
            executors={"default": _make_executor(self._submit)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=timezone.utc,
        )
        aps.start(paused=True)
        self._sync(aps)
        with self._lock:
            self._aps = aps
        aps.resume()
        log.info("running %d schedule(s): %s", len(self.schedules), ", ".join(self.schedules))

    def _stand_down(self) -> None:
        with self._lock:
            aps, self._aps = self._aps, None
        if aps is not None:
            aps.shutdown(wait=False)

    def _wakeup(self) -> None:
        # Another process may have paused or resumed a job in the store: look again.
        with self._lock:
            if self._aps is not None:
                self._aps.wakeup()

    def _submit(self, name: str, scheduled_for: float) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(self._fire(name, scheduled_for), self._loop)

    def _sync(self, aps: Any) -> None:
        """Make the store match the code, keeping what the store knows of unchanged schedules
        (their next run, missed runs, a pause)."""
        for job in aps.get_jobs():
            if job.id not in self.schedules:
                aps.remove_job(job.id)
                log.info("schedule %s is no longer defined; removed from the store", job.id)
        now = datetime.now(timezone.utc)
        for name, scheduled in self.schedules.items():
            timing = scheduled.timing
            job = aps.get_job(name)
            if job is None:
                aps.add_job(
                    _persisted_target,
                    timing.trigger(),
                    args=[name],
                    kwargs={"spec": timing.spec},
                    id=name,
                    name=name,
                    misfire_grace_time=timing.misfire_grace,
                )
            elif job.kwargs.get("spec") != timing.spec:
                trigger = timing.trigger()
                changes: dict[str, Any] = {
                    "trigger": trigger,
                    "kwargs": {"spec": timing.spec},
                    "misfire_grace_time": timing.misfire_grace,
                }
                if job.next_run_time is not None:  # a paused job stays paused
                    changes["next_run_time"] = trigger.get_next_fire_time(None, now)
                aps.modify_job(name, **changes)
                log.info("schedule %s changed to %s", name, timing.describe())

    # -- the console ---------------------------------------------------------------------------

    def pause(self, name: str) -> None:
        self._set_next_run(name, paused=True)

    def resume(self, name: str) -> None:
        self._set_next_run(name, paused=False)

    def _set_next_run(self, name: str, *, paused: bool) -> None:
        if name not in self.schedules:
            raise KeyError(name)
        with self._lock:
            if self._aps is not None:
                (self._aps.pause_job if paused else self._aps.resume_job)(name)
                return
        # Not the leader: change the stored job; the leader sees it at its next look.
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        store = SQLAlchemyJobStore(engine=self.db.engine, tablename=JOB_TABLE)
        job = store.lookup_job(name)
        if job is None:
            raise KeyError(name)
        job.next_run_time = (
            None
            if paused
            else self.schedules[name]
            .timing.trigger()
            .get_next_fire_time(None, datetime.now(timezone.utc))
        )
        store.update_job(job)

    def states(self) -> list[ScheduleState]:
        """Every schedule with its next run (from the store) and its last run (the inbox)."""
        endpoints = [ENDPOINT_PREFIX + n for n in self.schedules]
        with self.db.engine.connect() as conn:
            next_runs = _stored_next_runs(conn)
            last = _last_runs(conn, endpoints)
        out = []
        for name, scheduled in self.schedules.items():
            stored = name in next_runs
            next_run = next_runs.get(name)
            run = last.get(ENDPOINT_PREFIX + name, {})
            out.append(
                ScheduleState(
                    name=name,
                    trigger=scheduled.timing.describe(),
                    next_run=next_run,
                    paused=stored and next_run is None,
                    last_run_at=run.get("received_at"),
                    last_status=run.get("status"),
                    last_error=run.get("error"),
                    last_delivery=run.get("id"),
                )
            )
        return out


def _stored_next_runs(conn: sa.Connection) -> dict[str, float | None]:
    table = sa.table(JOB_TABLE, sa.column("id"), sa.column("next_run_time"))
    try:
        return {row.id: row.next_run_time for row in conn.execute(sa.select(table))}
    except sa.exc.DBAPIError:  # no leader has created the table yet
        conn.rollback()
        return {}


def _last_runs(conn: sa.Connection, endpoints: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        row = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.received_at, deliveries.c.status)
            .where(deliveries.c.endpoint == endpoint)
            .order_by(deliveries.c.received_at.desc())
            .limit(1)
        ).first()
        if row is None:
            continue
        error = conn.execute(
            sa.select(jobs.c.last_error).where(jobs.c.delivery_id == row.id).limit(1)
        ).scalar()
        out[endpoint] = {
            "id": row.id,
            "received_at": row.received_at,
            "status": row.status,
            "error": error,
        }
    return out


class _Leadership(threading.Thread):
    """Holds the PostgreSQL advisory lock that makes this process the one running schedules.

    The lock lives on one dedicated connection: it is released when the connection closes,
    which is what happens when the process dies. While leading, the connection is checked every
    `interval`; if it fails, this process stops scheduling and tries again like any other.
    """

    def __init__(
        self,
        db: Database,
        interval: float,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        on_tick: Callable[[], None],
    ) -> None:
        super().__init__(name="spacehooks-leader", daemon=True)
        self.db = db
        self.interval = interval
        self._elected, self._deposed, self._tick = on_elected, on_deposed, on_tick
        self._halt = threading.Event()
        self._conn: sa.Connection | None = None

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                if self._conn is None:
                    self._campaign()
                else:
                    self._conn.execute(sa.text("SELECT 1"))
                    self._conn.commit()
                    self._tick()
            except Exception as exc:
                if self._conn is not None:
                    log.error("lost the scheduler lock's connection (%s); standing down", exc)
                    self._resign()
                else:
                    log.warning("could not campaign for the scheduler lock: %s", exc)
            self._halt.wait(self.interval)
        self._resign()

    def _campaign(self) -> None:
        conn = self.db.engine.connect()
        try:
            won = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _LEADER_LOCK_KEY}
            ).scalar()
            conn.commit()
        except Exception:
            conn.invalidate()
            raise
        if not won:
            conn.close()
            return
        self._conn = conn
        log.info("this process now runs the schedules (it holds the scheduler lock)")
        try:
            self._elected()
        except Exception:
            log.exception("could not start the schedules; giving the lock back")
            self._resign()

    def _resign(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._deposed()
        with contextlib.suppress(Exception):  # if the connection is gone, so is the lock
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LEADER_LOCK_KEY})
            conn.commit()
        conn.invalidate()  # never back to the pool: a pooled connection would keep the lock


# -- the console and the admin API ---------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def overview(server: WebhooksServer) -> list[dict[str, Any]]:
    """Every timed schedule and CommitScheduler of `server`'s process, as JSON-able rows keyed
    ``schedule:<name>`` and ``commit:<id>``."""
    from . import commit_scheduler

    rows: list[dict[str, Any]] = []
    if server.scheduler is not None:
        for st in server.scheduler.states():
            rows.append(
                {
                    "key": ENDPOINT_PREFIX + st.name,
                    "kind": "schedule",
                    "name": st.name,
                    "trigger": st.trigger,
                    "next_run": _iso(st.next_run),
                    "paused": st.paused,
                    "last_run_at": _iso(st.last_run_at),
                    "last_result": st.last_status,
                    "last_error": st.last_error,
                    "last_delivery": st.last_delivery,
                }
            )
    for scheduler in commit_scheduler.live_schedulers():
        cs = scheduler.state()
        result = None
        if cs.last_commit:
            result = f"commit {cs.last_commit[:12]}: {cs.last_files} file(s), {cs.last_bytes} B"
        rows.append(
            {
                "key": "commit:" + cs.id,
                "kind": "commit",
                "name": cs.repo,
                "trigger": f"every {duration_text(cs.every_minutes * 60)} from {cs.folder}",
                "next_run": _iso(cs.next_run),
                "paused": cs.paused,
                "last_run_at": _iso(max(cs.last_commit_at or 0, cs.last_error_at or 0) or None),
                "last_result": result,
                "last_error": cs.last_error,
                "total_files": cs.total_files,
                "total_bytes": cs.total_bytes,
            }
        )
    return rows


async def act(server: WebhooksServer, key: str, action: str) -> dict[str, Any]:
    """Run now, pause or resume the schedule or CommitScheduler `key`; KeyError if unknown."""
    from . import commit_scheduler

    if action not in ("run", "pause", "resume"):
        raise ValueError(f"Unknown action {action!r}: use run, pause or resume.")
    kind, _, ident = key.partition(":")
    if kind == "schedule" and server.scheduler is not None and ident in server.scheduler.schedules:
        if action == "run":
            run_id = await server.run_schedule(ident, wait=False)
            return {"key": key, "delivery_id": run_id}
        method = server.scheduler.pause if action == "pause" else server.scheduler.resume
        await asyncio.to_thread(method, ident)
        return {"key": key, "paused": action == "pause"}
    if kind == "commit":
        for scheduler in commit_scheduler.live_schedulers():
            if scheduler.id == ident:
                if action == "run":
                    scheduler.trigger()
                    return {"key": key, "push": "started"}
                (scheduler.pause if action == "pause" else scheduler.resume)()
                return {"key": key, "paused": action == "pause"}
    raise KeyError(key)
