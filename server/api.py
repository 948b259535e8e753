"""The inspection and replay API (`/api/...`) and the health routes.

Admin routes need credentials: a bearer `SPACEHOOKS_ADMIN_TOKEN` when one is set; otherwise they
answer only direct loopback requests, off a Space and with no tunnel open (a request relayed by
a proxy carries forwarding headers and is refused; one through a tunnel comes from loopback, so
a tunnel closes them all).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from . import inbox, inspection, scheduling

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = ["install"]

# "testclient" is the peer name of Starlette's in-process TestClient; over TCP a peer is an IP.
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
_FORWARDED = ("x-forwarded-for", "forwarded", "x-real-ip")


def _timestamp(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{name}={value!r} is not an ISO 8601 time.") from None
    if parsed.tzinfo is None:
        raise HTTPException(400, f"{name}={value!r} needs a timezone, e.g. 2026-01-31T12:00:00Z.")
    return parsed.timestamp()


def install(app: FastAPI, server: WebhooksServer) -> None:
    """Add the health and admin routes of `server` to `app`."""

    def require_admin(request: Request) -> None:
        token = server.settings.admin_token
        if token is not None:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode(), token.get_secret_value().encode()
            ):
                return
            raise HTTPException(
                401, "Admin routes need 'Authorization: Bearer <SPACEHOOKS_ADMIN_TOKEN>'."
            )
        host = request.client.host if request.client else ""
        relayed = any(h in request.headers for h in _FORWARDED)
        # A tunnel (--share) delivers the internet's requests from loopback.
        if server.settings.on_space or server.tunneled or relayed or host not in _LOOPBACK:
            raise HTTPException(
                401, "Admin routes answer loopback requests only; set SPACEHOOKS_ADMIN_TOKEN."
            )

    def runtime() -> tuple[Any, Any]:
        if server.db is None or server.worker is None:
            raise HTTPException(503, "The server is starting or stopping.")
        return server.db, server.worker

    admin = [Depends(require_admin)]

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        problems = []
        if server.db is None or server.worker is None or not server.worker.running:
            problems.append("worker not running")
        elif server.scheduler is None or not server.scheduler.running:
            problems.append("scheduler not running")
        else:
            try:
                await server.db.aread(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())
            except Exception as exc:
                problems.append(f"database unreachable: {type(exc).__name__}")
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", dependencies=admin, include_in_schema=False)
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        db, _ = runtime()
        counts = await db.aread(inspection.counts_by_status)
        return Response(server.metrics.render(counts), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/deliveries", dependencies=admin)
    async def list_deliveries(
        status: str | None = None,
        endpoint: str | None = None,
        repo: str | None = None,
        scope: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        db, _ = runtime()
        return await db.aread(
            partial(
                inspection.list_deliveries,
                status=status,
                endpoint=endpoint,
                repo=repo,
                scope=scope,
                since=_timestamp(since, "since"),
                until=_timestamp(until, "until"),
                limit=limit,
                offset=offset,
            )
        )

    @app.get("/api/deliveries/{delivery_id}", dependencies=admin)
    async def get_delivery(delivery_id: str) -> dict[str, Any]:
        db, _ = runtime()
        detail = await db.aread(partial(inspection.delivery_detail, delivery_id=delivery_id))
        if detail is None:
            raise HTTPException(404, f"No delivery with id {delivery_id!r}.")
        return detail

    @app.post("/api/deliveries/{delivery_id}/replay", dependencies=admin)
    async def replay(delivery_id: str) -> dict[str, Any]:
        db, worker = runtime()
        job_ids = await db.write(partial(inbox.replay, delivery_id=delivery_id, now=time.time()))
        if job_ids is None:
            raise HTTPException(404, f"No delivery with id {delivery_id!r}.")
        worker.wake()
        return {"delivery_id": delivery_id, "replayed_jobs": job_ids}

    @app.get("/api/schedules", dependencies=admin)
    async def list_schedules() -> dict[str, Any]:
        runtime()
        return {"items": await asyncio.to_thread(scheduling.overview, server)}

    @app.post("/api/schedules/{key}/{action}", dependencies=admin)
    async def schedule_action(key: str, action: str) -> dict[str, Any]:
        runtime()
        if action not in ("run", "pause", "resume"):
            raise HTTPException(404, f"No action {action!r}: use run, pause or resume.")
        try:
            return await scheduling.act(server, key, action)
        except KeyError:
            raise HTTPException(404, f"No schedule or CommitScheduler {key!r}.") from None

    @app.get("/api/resources", dependencies=admin)
    async def list_resources() -> dict[str, Any]:
        runtime()
        return {"items": await asyncio.to_thread(server.resources.refresh, server)}

    @app.post("/api/replay-dead", dependencies=admin)
    async def replay_dead(endpoint: str | None = None) -> dict[str, Any]:
        db, worker = runtime()
        ids = await db.write(partial(inbox.replay_dead, endpoint=endpoint, now=time.time()))
        worker.wake()
        return {"replayed_deliveries": ids}
