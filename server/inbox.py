"""The inbox: deliveries stored durably, and the jobs they become.

Every function here takes a SQLAlchemy connection inside a transaction and does one step of a
delivery's life; `Database.write` runs them in group commits. Nothing here runs handlers.

A delivery's jobs go ``queued -> running -> succeeded | queued (retry) | dead``. A running job
belongs to the worker named in ``claimed_by`` until ``claim_expires_at``; the worker renews the
claim while the handler runs, so a claim that expires means its process died, and the job may be
taken by another (or the restarted) process.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .db import BulkStatement, attempts, deliveries, jobs

__all__ = [
    "Accepted",
    "ClaimedJob",
    "Duplicate",
    "Finish",
    "Incoming",
    "StoreRequest",
    "claim_due",
    "finish_job",
    "finish_many",
    "idempotency_key",
    "prune",
    "release_claims",
    "renew_claims",
    "replay",
    "replay_dead",
    "store",
    "store_many",
]

# Headers never stored: they carry secrets.
_SECRET_HEADERS = frozenset({"x-webhook-secret", "authorization", "cookie", "proxy-authorization"})
_PENDING = ("queued", "running")


def new_id() -> str:
    return uuid.uuid4().hex


def idempotency_key(endpoint: str, headers: Mapping[str, str], body: bytes) -> str:
    """The sender's delivery id when it sends one, else a digest of endpoint and body."""
    sender_id = headers.get("webhook-id")
    if sender_id:
        return "id:" + sender_id[:120]
    return "sha256:" + hashlib.sha256(endpoint.encode() + b"\0" + body).hexdigest()


def safe_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in _SECRET_HEADERS}


@dataclass(frozen=True)
class Incoming:
    """A verified, parsed request, ready to be stored."""

    endpoint: str
    headers: dict[str, str]
    query: str
    body: bytes
    handlers: tuple[str, ...]
    scope: str | None = None
    action: str | None = None
    repo: str | None = None
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Accepted:
    delivery_id: str
    job_ids: dict[str, str]  # handler name -> job id


@dataclass(frozen=True)
class Duplicate:
    delivery_id: str


@dataclass(frozen=True)
class ClaimedJob:
    """Everything a worker needs to run one attempt of a job."""

    job_id: str
    delivery_id: str
    handler: str
    attempt: int  # the number of this attempt, 1-based
    budget_start: int
    endpoint: str
    headers: dict[str, str]
    query: str
    body: bytes
    received_at: float
    started_at: float


@dataclass(frozen=True)
class StoreRequest:
    item: Incoming
    worker: str
    dedupe_window: float
    claim_ttl: float


_insert_delivery = BulkStatement(deliveries.insert())
_insert_job = BulkStatement(jobs.insert())
_insert_attempt = BulkStatement(attempts.insert())


def store_many(conn: Connection, requests: list[StoreRequest]) -> list[Accepted | Duplicate]:
    """Store deliveries and their jobs, or recognise duplicates: a batch operation.

    One lookup finds the latest delivery of every idempotency key in the batch; the new rows go
    in with one executemany per table. Jobs are created already claimed by the request's
    worker, because they start at once in that process.
    """
    keys = [idempotency_key(r.item.endpoint, r.item.headers, r.item.body) for r in requests]
    latest: dict[str, tuple[str, float, str]] = {}
    for row in conn.execute(
        sa.select(
            deliveries.c.idempotency_key,
            deliveries.c.id,
            deliveries.c.received_at,
            deliveries.c.status,
        )
        .where(deliveries.c.idempotency_key.in_(set(keys)))
        .order_by(deliveries.c.received_at)
    ):
        latest[row.idempotency_key] = (row.id, row.received_at, row.status)
    results: list[Accepted | Duplicate] = []
    delivery_rows: list[dict[str, Any]] = []
    job_rows: list[dict[str, Any]] = []
    for request, key in zip(requests, keys, strict=True):
        item, now = request.item, request.item.received_at
        previous = latest.get(key)
        if previous is not None and (
            now - previous[1] <= request.dedupe_window or previous[2] in _PENDING
        ):
            results.append(Duplicate(previous[0]))
            continue
        delivery_id = new_id()
        status = "running" if item.handlers else "unhandled"
        latest[key] = (delivery_id, now, status)
        delivery_rows.append(
            dict(
                id=delivery_id,
                endpoint=item.endpoint,
                received_at=now,
                headers=json.dumps(item.headers),
                query=item.query,
                body=item.body,
                idempotency_key=key,
                scope=item.scope,
                action=item.action,
                repo=item.repo,
                status=status,
            )
        )
        job_ids = {name: new_id() for name in item.handlers}
        job_rows.extend(
            dict(
                id=job_id,
                delivery_id=delivery_id,
                handler=name,
                status="running",
                attempts=0,
                budget_start=0,
                next_run_at=now,
                claimed_by=request.worker,
                claim_expires_at=now + request.claim_ttl,
                updated_at=now,
            )
            for name, job_id in job_ids.items()
        )
        results.append(Accepted(delivery_id, job_ids))
    _insert_delivery.executemany(conn, delivery_rows)
    _insert_job.executemany(conn, job_rows)
    return results


def store(
    conn: Connection,
    item: Incoming,
    *,
    worker: str,
    dedupe_window: float,
    claim_ttl: float,
) -> Accepted | Duplicate:
    """Store one delivery (see `store_many`)."""
    return store_many(conn, [StoreRequest(item, worker, dedupe_window, claim_ttl)])[0]


def _claimed_rows(conn: Connection, job_ids: Sequence[str], now: float) -> list[ClaimedJob]:
    if not job_ids:
        return []
    rows = conn.execute(
        sa.select(
            jobs.c.id,
            jobs.c.delivery_id,
            jobs.c.handler,
            jobs.c.attempts,
            jobs.c.budget_start,
            deliveries.c.endpoint,
            deliveries.c.headers,
            deliveries.c.query,
            deliveries.c.body,
            deliveries.c.received_at,
        )
        .join(deliveries, deliveries.c.id == jobs.c.delivery_id)
        .where(jobs.c.id.in_(job_ids))
    ).all()
    return [
        ClaimedJob(
            job_id=r.id,
            delivery_id=r.delivery_id,
            handler=r.handler,
            attempt=r.attempts + 1,
            budget_start=r.budget_start,
            endpoint=r.endpoint,
            headers=json.loads(r.headers),
            query=r.query,
            body=r.body,
            received_at=r.received_at,
            started_at=now,
        )
        for r in rows
    ]


def load_claimed(conn: Connection, job_ids: Sequence[str], now: float) -> list[ClaimedJob]:
    """The run data of jobs this worker already holds (fresh ones, from `store`)."""
    return _claimed_rows(conn, job_ids, now)


def claim_due(
    conn: Connection,
    *,
    worker: str,
    now: float,
    claim_ttl: float,
    limit: int,
    handlers: Iterable[str],
) -> list[ClaimedJob]:
    """Claim up to `limit` jobs that are due, or whose claim expired (their process died).

    On PostgreSQL the candidate rows are locked with SKIP LOCKED, so concurrent replicas claim
    disjoint sets; on SQLite the writer's IMMEDIATE transaction already serialises claims.
    """
    names = list(handlers)
    if limit <= 0 or not names:
        return []
    due = sa.or_(
        sa.and_(jobs.c.status == "queued", jobs.c.next_run_at <= now),
        sa.and_(jobs.c.status == "running", jobs.c.claim_expires_at < now),
    )
    candidates = (
        sa.select(jobs.c.id)
        .where(due, jobs.c.handler.in_(names))
        .order_by(jobs.c.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(conn.execute(candidates).scalars())
    if not ids:
        return []
    conn.execute(
        jobs.update()
        .where(jobs.c.id.in_(ids))
        .values(
            status="running", claimed_by=worker, claim_expires_at=now + claim_ttl, updated_at=now
        )
    )
    delivery_ids = conn.execute(
        sa.select(jobs.c.delivery_id).where(jobs.c.id.in_(ids)).distinct()
    ).scalars()
    _refresh_statuses(conn, set(delivery_ids))
    return _claimed_rows(conn, ids, now)


def renew_claims(conn: Connection, *, worker: str, job_ids: Sequence[str], until: float) -> int:
    """Extend this worker's claims (heartbeat); returns how many it still holds."""
    if not job_ids:
        return 0
    result = conn.execute(
        jobs.update()
        .where(jobs.c.id.in_(job_ids), jobs.c.claimed_by == worker, jobs.c.status == "running")
        .values(claim_expires_at=until)
    )
    return result.rowcount


def release_claims(conn: Connection, *, worker: str, now: float) -> int:
    """Give back every job this worker holds (graceful shutdown), due at once for others."""
    result = conn.execute(
        jobs.update()
        .where(jobs.c.claimed_by == worker, jobs.c.status == "running")
        .values(status="queued", claimed_by=None, claim_expires_at=None, next_run_at=now)
    )
    return result.rowcount


def reclaim_all_running(conn: Connection, *, now: float) -> int:
    """SQLite has one process: at its start, anything 'running' was interrupted by a crash."""
    result = conn.execute(
        jobs.update()
        .where(jobs.c.status == "running")
        .values(status="queued", claimed_by=None, claim_expires_at=None, next_run_at=now)
    )
    return result.rowcount


@dataclass(frozen=True)
class Finish:
    """The end of one attempt. `outcome`: succeeded, failed (retry at `retry_at`) or dead."""

    job: ClaimedJob
    worker: str
    outcome: str
    finished_at: float
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    retry_at: float | None = None


_NEXT_STATUS = {"succeeded": "succeeded", "failed": "queued", "dead": "dead"}

_update_finished = BulkStatement(
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.bindparam("b_status"),
        attempts=sa.bindparam("b_attempts"),
        next_run_at=sa.bindparam("b_next"),
        claimed_by=sa.null(),
        claim_expires_at=sa.null(),
        result=sa.bindparam("b_result"),
        last_error=sa.bindparam("b_error"),
        updated_at=sa.bindparam("b_now"),
    )
)


def finish_many(conn: Connection, finishes: list[Finish]) -> list[bool]:
    """Record attempts and move their jobs on: a batch operation.

    A job whose claim was lost meanwhile (its claim expired and another worker took it) is not
    touched; its attempt is recorded as ``superseded`` and its result is False.
    """
    wanted = {(f.job.job_id, f.worker) for f in finishes}
    held_rows = conn.execute(
        sa.select(jobs.c.id, jobs.c.claimed_by)
        .where(jobs.c.id.in_({f.job.job_id for f in finishes}), jobs.c.status == "running")
        .with_for_update()
    )
    held = {(r.id, r.claimed_by) for r in held_rows} & wanted
    updates, attempt_rows, results = [], [], []
    for f in finishes:
        ok = (f.job.job_id, f.worker) in held
        held.discard((f.job.job_id, f.worker))  # a second finish of the same claim loses
        results.append(ok)
        if ok:
            updates.append(
                dict(
                    b_id=f.job.job_id,
                    b_status=_NEXT_STATUS[f.outcome],
                    b_attempts=f.job.attempt,
                    b_next=f.retry_at if f.retry_at is not None else f.finished_at,
                    b_result=f.result,
                    b_error=f.error,
                    b_now=f.finished_at,
                )
            )
        attempt_rows.append(
            dict(
                job_id=f.job.job_id,
                number=f.job.attempt,
                worker=f.worker,
                started_at=f.job.started_at,
                finished_at=f.finished_at,
                outcome=f.outcome if ok else "superseded",
                error=f.error,
                traceback=f.traceback,
            )
        )
    _update_finished.executemany(conn, updates)
    _insert_attempt.executemany(conn, attempt_rows)
    _refresh_statuses(conn, {f.job.delivery_id for f in finishes})
    return results


def finish_job(conn: Connection, **fields: Any) -> bool:
    """Record one attempt (see `Finish` and `finish_many`)."""
    return finish_many(conn, [Finish(**fields)])[0]


def derive_status(jobs_of_delivery: Iterable[tuple[str, int]]) -> str:
    """A delivery's status from its jobs' (status, attempts): what the console filters on."""
    rows = list(jobs_of_delivery)
    statuses = {status for status, _ in rows}
    if not rows:
        return "unhandled"
    if "running" in statuses:
        return "running"
    if "queued" in statuses:
        return "retrying" if any(attempts for _, attempts in rows) else "queued"
    if "dead" in statuses:
        return "dead"
    return "succeeded"


_update_status = BulkStatement(
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("b_id"))
    .values(status=sa.bindparam("b_status"))
)


def _refresh_statuses(conn: Connection, delivery_ids: set[str]) -> None:
    if not delivery_ids:
        return
    by_delivery: dict[str, list[tuple[str, int]]] = {d: [] for d in delivery_ids}
    for row in conn.execute(
        sa.select(jobs.c.delivery_id, jobs.c.status, jobs.c.attempts).where(
            jobs.c.delivery_id.in_(delivery_ids)
        )
    ):
        by_delivery[row.delivery_id].append((row.status, row.attempts))
    _update_status.executemany(
        conn, [{"b_id": d, "b_status": derive_status(rows)} for d, rows in by_delivery.items()]
    )


def replay(conn: Connection, delivery_id: str, *, now: float) -> list[str] | None:
    """Queue every job of a delivery again, with a fresh retry budget. Returns the job ids, or
    None when there is no such delivery.

    A job that is running now is left alone (it is being tried already).
    """
    found = conn.execute(sa.select(deliveries.c.id).where(deliveries.c.id == delivery_id)).first()
    if found is None:
        return None
    return _requeue(conn, delivery_id, now)


def _requeue(conn: Connection, delivery_id: str, now: float) -> list[str]:
    ids = list(
        conn.execute(
            sa.select(jobs.c.id).where(
                jobs.c.delivery_id == delivery_id, jobs.c.status != "running"
            )
        ).scalars()
    )
    if ids:
        conn.execute(
            jobs.update()
            .where(jobs.c.id.in_(ids))
            .values(
                status="queued",
                next_run_at=now,
                budget_start=jobs.c.attempts,
                claimed_by=None,
                claim_expires_at=None,
                updated_at=now,
            )
        )
        _refresh_statuses(conn, {delivery_id})
    return ids


def replay_dead(conn: Connection, endpoint: str | None, *, now: float) -> list[str]:
    """Replay every delivery with a dead job (of one endpoint, or all). Returns delivery ids."""
    query = sa.select(deliveries.c.id).where(deliveries.c.status == "dead")
    if endpoint:
        query = query.where(deliveries.c.endpoint == endpoint)
    delivery_ids = list(conn.execute(query).scalars())
    for delivery_id in delivery_ids:
        _requeue(conn, delivery_id, now)
    return delivery_ids


def prune(conn: Connection, *, older_than: float) -> int:
    """Delete succeeded and unhandled deliveries received before `older_than`; dead ones stay."""
    old = sa.select(deliveries.c.id).where(
        deliveries.c.received_at < older_than,
        deliveries.c.status.in_(("succeeded", "unhandled")),
    )
    old_ids = list(conn.execute(old).scalars())
    for start in range(0, len(old_ids), 500):
        chunk = old_ids[start : start + 500]
        job_ids = sa.select(jobs.c.id).where(jobs.c.delivery_id.in_(chunk))
        conn.execute(attempts.delete().where(attempts.c.job_id.in_(job_ids)))
        conn.execute(jobs.delete().where(jobs.c.delivery_id.in_(chunk)))
        conn.execute(deliveries.delete().where(deliveries.c.id.in_(chunk)))
    return len(old_ids)
