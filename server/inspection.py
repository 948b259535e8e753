"""Reading the inbox for people: listing deliveries with filters and paging, one delivery
with its jobs and every attempt, and job counts. Read-only; the API and the console use it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .db import attempts, deliveries, jobs

__all__ = ["counts_by_status", "delivery_detail", "list_deliveries"]


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def list_deliveries(
    conn: Connection,
    *,
    status: str | None = None,
    endpoint: str | None = None,
    repo: str | None = None,
    scope: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """A page of deliveries, newest first, with the total that match the filters."""
    conds = []
    if status:
        conds.append(deliveries.c.status == status)
    if endpoint:
        conds.append(deliveries.c.endpoint == endpoint)
    if repo:
        conds.append(deliveries.c.repo == repo)
    if scope:
        conds.append(sa.or_(deliveries.c.scope == scope, deliveries.c.scope.like(scope + ".%")))
    if since is not None:
        conds.append(deliveries.c.received_at >= since)
    if until is not None:
        conds.append(deliveries.c.received_at < until)
    where = sa.and_(sa.true(), *conds)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(deliveries).where(where)
    ).scalar_one()
    attempt_count = (
        sa.select(sa.func.coalesce(sa.func.sum(jobs.c.attempts), 0))
        .where(jobs.c.delivery_id == deliveries.c.id)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(
            deliveries.c.id,
            deliveries.c.endpoint,
            deliveries.c.received_at,
            deliveries.c.scope,
            deliveries.c.action,
            deliveries.c.repo,
            deliveries.c.status,
            attempt_count.label("attempts"),
        )
        .where(where)
        .order_by(deliveries.c.received_at.desc(), deliveries.c.id)
        .limit(limit)
        .offset(offset)
    ).all()
    items = [
        {
            "id": r.id,
            "endpoint": r.endpoint,
            "received_at": _iso(r.received_at),
            "scope": r.scope,
            "action": r.action,
            "repo": r.repo,
            "status": r.status,
            "attempts": int(r.attempts),
        }
        for r in rows
    ]
    return {"total": total, "limit": limit, "offset": offset, "items": items}


def delivery_detail(conn: Connection, delivery_id: str) -> dict[str, Any] | None:
    """One delivery with its payload, its jobs and every attempt of each."""
    d = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
    if d is None:
        return None
    job_rows = conn.execute(
        sa.select(jobs).where(jobs.c.delivery_id == delivery_id).order_by(jobs.c.handler)
    ).all()
    attempt_rows = conn.execute(
        sa.select(attempts)
        .where(attempts.c.job_id.in_([j.id for j in job_rows]))
        .order_by(attempts.c.job_id, attempts.c.number, attempts.c.id)
    ).all()
    try:
        payload: Any = json.loads(d.body)
    except ValueError:
        payload = d.body.decode("utf-8", "replace")
    return {
        "id": d.id,
        "endpoint": d.endpoint,
        "received_at": _iso(d.received_at),
        "scope": d.scope,
        "action": d.action,
        "repo": d.repo,
        "status": d.status,
        "headers": json.loads(d.headers),
        "payload": payload,
        "jobs": [
            {
                "id": j.id,
                "handler": j.handler,
                "status": j.status,
                "attempts": j.attempts,
                "next_run_at": _iso(j.next_run_at) if j.status == "queued" else None,
                "result": json.loads(j.result) if j.result else None,
                "last_error": j.last_error,
                "history": [
                    {
                        "number": a.number,
                        "worker": a.worker,
                        "started_at": _iso(a.started_at),
                        "finished_at": _iso(a.finished_at),
                        "duration_s": round(a.finished_at - a.started_at, 4),
                        "outcome": a.outcome,
                        "error": a.error,
                        "traceback": a.traceback,
                    }
                    for a in attempt_rows
                    if a.job_id == j.id
                ],
            }
            for j in job_rows
        ],
    }


def counts_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
    return {status: int(n) for status, n in rows}
