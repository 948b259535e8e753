"""Running jobs: attempts, retries with backoff, dead letters, claims and their heartbeat.

One `Worker` per process, on the app's event loop. Async handlers run on the loop; sync ones in
a thread pool, never on the loop. Jobs come from two places: fresh deliveries (`launch`, so they
start at once, inside the request's ack budget) and the poll loop (`claim_due`: retries that came
due, replays, and jobs whose claim expired because their process died).

The outcome of an attempt is handed to whoever waits on the job (the request, within its ack
budget) as soon as the handler returns; recording it is a group-committed write that follows.
If the process dies in between, the job runs again on restart: processing is at-least-once, and
handlers make a second run harmless with `DeliveryContext.delivery_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import inbox
from .context import RetryLater, is_retryable
from .db import Database
from .inbox import ClaimedJob
from .metrics import Metrics
from .routing import Handler
from .settings import Settings

__all__ = ["JobOutcome", "Worker", "encode_result"]

log = logging.getLogger("spacehooks.worker")

_PRUNE_EVERY = 3600.0


@dataclass(frozen=True)
class JobOutcome:
    status: str  # succeeded | failed (will be retried) | dead
    result: Any = None
    error: str | None = None


def encode_result(value: Any) -> str | None:
    """A handler's return value as stored JSON (its repr when it is not JSON-able)."""
    if value is None:
        return None
    from fastapi.encoders import jsonable_encoder

    try:
        return json.dumps(jsonable_encoder(value))
    except Exception:
        return json.dumps({"repr": repr(value)[:2000]})


#: Runs one attempt of a job: builds the handler's arguments and calls it.
Invoke = Callable[[Handler, ClaimedJob], Awaitable[Any]]


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        handlers: dict[str, Handler],
        invoke: Invoke,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.handlers = handlers
        self._invoke = invoke
        self.metrics = metrics or Metrics()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.executor = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="spacehooks-handler"
        )
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._inflight: dict[str, asyncio.Task[JobOutcome]] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._accepting = True
        self._last_prune = 0.0
        self.running = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.db.is_postgres:
            # SQLite has a single process: whatever it left 'running' was cut off by a crash.
            n = await self.db.write(functools.partial(inbox.reclaim_all_running, now=time.time()))
            if n:
                log.warning("picked up %d job(s) interrupted by the previous process", n)
        self.running = True
        self._loops = [
            asyncio.create_task(self._poll_loop(), name="spacehooks-poll"),
            asyncio.create_task(self._heartbeat_loop(), name="spacehooks-heartbeat"),
        ]

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking work, give running jobs `grace` seconds, and release the rest."""
        self._accepting = False
        poll, *others = self._loops
        # The poll loop ends between iterations: cancelled mid-write, it would leave jobs claimed
        # by this process that nobody runs until the claim expires.
        self._wake.set()
        try:
            await asyncio.wait_for(poll, timeout=10)
        except asyncio.TimeoutError:
            poll.cancel()
        for task in others:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pending = list(self._inflight.values())
        if pending:
            timeout = self.settings.shutdown_grace if grace is None else grace
            log.info("waiting up to %.0f s for %d running job(s)", timeout, len(pending))
            _, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
        released = await self.db.write(
            functools.partial(inbox.release_claims, worker=self.id, now=time.time())
        )
        if released:
            log.warning(
                "%d job(s) did not finish in time; they will run at the next start", released
            )
        self.running = False
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- running jobs --------------------------------------------------------------------------

    def launch(self, claimed: list[ClaimedJob]) -> dict[str, asyncio.Task[JobOutcome]]:
        """Start jobs this worker holds; returns a task per job id resolving to its outcome."""
        started = {}
        for job in claimed:
            task = asyncio.create_task(self._run(job), name=f"job-{job.job_id}")
            self._inflight[job.job_id] = task
            task.add_done_callback(lambda _t, jid=job.job_id: self._inflight.pop(jid, None))
            started[job.job_id] = task
        return started

    def wake(self) -> None:
        """Look for due jobs now (after a replay, say) rather than at the next poll."""
        self._wake.set()

    async def _run(self, job: ClaimedJob) -> JobOutcome:
        handler = self.handlers.get(job.handler)
        async with self._slots:
            started = time.time()
            job = dataclasses.replace(job, started_at=started)
            if handler is None:
                exc: BaseException = LookupError(
                    f"No handler named {job.handler!r} is registered in this process."
                )
                return await self._finish(job, handler, started, exc=exc)
            try:
                result = await self._invoke(handler, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return await self._finish(job, handler, started, exc=exc)
            return await self._finish(job, handler, started, result=result)

    async def call(self, handler: Handler, kwargs: dict[str, Any]) -> Any:
        """Call a handler: on the loop if async, in the thread pool if not."""
        if handler.is_async:
            return await handler.fn(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(handler.fn, **kwargs))

    async def _finish(
        self,
        job: ClaimedJob,
        handler: Handler | None,
        started: float,
        *,
        result: Any = None,
        exc: BaseException | None = None,
    ) -> JobOutcome:
        now = time.time()
        duration = now - started
        if exc is None:
            outcome = JobOutcome("succeeded", result)
            finish = inbox.Finish(
                job=job,
                worker=self.id,
                outcome="succeeded",
                finished_at=now,
                result=encode_result(result),
            )
            log.info(
                "job succeeded delivery=%s job=%s handler=%s attempt=%d duration_ms=%.1f",
                job.delivery_id,
                job.job_id,
                job.handler,
                job.attempt,
                duration * 1000,
            )
        else:
            error = f"{type(exc).__name__}: {exc}"[:4000]
            tb = "".join(traceback.format_exception(exc))[-16000:]
            used = job.attempt - job.budget_start
            retry = handler.retry if handler is not None else None
            retry_at = None
            if retry is not None and is_retryable(exc) and used < retry.max_attempts:
                delay = exc.delay if isinstance(exc, RetryLater) else retry.delay(used)
                retry_at = now + delay
                outcome = JobOutcome("failed", error=error)
                asyncio.get_running_loop().call_later(delay, self._wake.set)
            else:
                outcome = JobOutcome("dead", error=error)
            finish = inbox.Finish(
                job=job,
                worker=self.id,
                outcome=outcome.status,
                finished_at=now,
                error=error,
                traceback=tb,
                retry_at=retry_at,
            )
            log.warning(
                "job %s delivery=%s job=%s handler=%s attempt=%d duration_ms=%.1f error=%s%s",
                "failed" if retry_at else "dead",
                job.delivery_id,
                job.job_id,
                job.handler,
                job.attempt,
                duration * 1000,
                error,
                f" retry_in_s={retry_at - now:.1f}" if retry_at else "",
            )
        self.metrics.handler_seconds.labels(job.handler, outcome.status).observe(duration)
        if outcome.status == "failed":
            self.metrics.retries.labels(job.handler).inc()
        # Recorded in the next group commit; the caller need not wait for the disk.
        fut = self.db.submit_item(inbox.finish_many, finish)
        fut.add_done_callback(_log_write_failure)
        return outcome

    # -- background loops ----------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval)
            self._wake.clear()
            if not self._accepting:
                return
            try:
                await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("polling for due jobs failed; will try again")

    async def _poll_once(self) -> None:
        now = time.time()
        free = self.settings.concurrency - len(self._inflight)
        if free > 0:
            claimed = await self.db.write(
                functools.partial(
                    inbox.claim_due,
                    worker=self.id,
                    now=now,
                    claim_ttl=self.settings.claim_ttl,
                    limit=free,
                    handlers=self.handlers,
                )
            )
            if claimed:
                self.launch(claimed)
        if now - self._last_prune > _PRUNE_EVERY:
            self._last_prune = now
            cutoff = now - self.settings.retention_days * 86400
            pruned = await self.db.write(functools.partial(inbox.prune, older_than=cutoff))
            if pruned:
                log.info(
                    "pruned %d succeeded deliveries older than %g days",
                    pruned,
                    self.settings.retention_days,
                )

    async def _heartbeat_loop(self) -> None:
        every = self.settings.claim_ttl / 3
        while True:
            await asyncio.sleep(every)
            ids = list(self._inflight)
            if not ids:
                continue
            try:
                await self.db.write(
                    functools.partial(
                        inbox.renew_claims,
                        worker=self.id,
                        job_ids=ids,
                        until=time.time() + self.settings.claim_ttl,
                    )
                )
            except Exception:
                log.exception("renewing job claims failed; will try again")


def _log_write_failure(fut: Any) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("could not record a job's outcome (it will run again): %s", exc)
