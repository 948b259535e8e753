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
within that interval. The timing rules are in `timing.py`, the lock in `leader.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .context import ScheduledRun
from .db import Database, deliveries, jobs
from .inbox import Incoming
from .leader import LeaderLock
from .routing import Handler
from .timing import Timing, duration_text

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = [
    "ScheduleState",
    "Scheduled",
    "Scheduler",
    "act",
    "overview",
]

log = logging.getLogger("spacehooks.schedules")

JOB_TABLE = "spacehooks_schedules"
ENDPOINT_PREFIX = "schedule:"


# -- what a schedule is --------------------------------------------------------------------------


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
        self._leadership: LeaderLock | None = None
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
            self._leadership = LeaderLock(
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
