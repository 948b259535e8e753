"""The webhook route: what happens to one ``POST /webhooks/<name>`` (design.md, "The path of
one event").

Read the body up to the limit -> verify the sender -> parse the payload -> store it durably
(group commit) -> start the matching handlers -> answer with the result if they finish within
the ack budget, else 202 and they go on. It runs as a thin ASGI layer in front of FastAPI: the
hot path needs none of FastAPI's routing, dependency and exception layers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from . import inbox, security
from .inbox import Accepted, Incoming
from .payload import WebhookPayload
from .worker import JobOutcome

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = ["WebhookRoute", "handle_webhook"]

log = logging.getLogger("spacehooks")

_JSON_TYPES = ("application/json",)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (without reading on) once it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class WebhookRoute:
    """ASGI middleware that answers ``POST /webhooks/...`` with `handle_webhook`."""

    def __init__(self, app: Any, server: WebhooksServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/webhooks/")
        ):
            response = await handle_webhook(self.server, Request(scope, receive))
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def handle_webhook(server: WebhooksServer, request: Request) -> Response:
    path = request.scope["path"]
    endpoint = server.endpoints.get(path)
    if endpoint is None or server.db is None or server.worker is None:
        if path not in server.router.paths():
            return _error(404, f"No webhook at {path}.", webhooks=server.router.paths())
        return _error(503, "The server is starting or stopping; try again shortly.")
    handlers, strict = endpoint
    try:
        body = await _read_body(request, server.settings.max_body_bytes)
    except _BodyTooLarge:
        server.metrics.deliveries.labels(path, "invalid").inc()
        return _error(413, f"Body over the limit of {server.settings.max_body_bytes} bytes.")
    headers = request.headers
    try:
        security.verify(
            secret=server.webhook_secret,
            headers=headers,
            query=request.query_params,
            body=body,
            now=time.time(),
            schemes=server.schemes,
        )
    except security.Rejection as rejection:
        server.metrics.deliveries.labels(path, "refused").inc()
        log.warning(
            "webhook refused path=%s status=%d reason=%s",
            path,
            rejection.status_code,
            rejection.error,
        )
        return JSONResponse(rejection.body(), status_code=rejection.status_code)
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _JSON_TYPES and not media.endswith("+json"):
        server.metrics.deliveries.labels(path, "invalid").inc()
        return _error(400, f"Content-Type {media!r} is not JSON: send application/json.")

    payload: WebhookPayload | None = None
    try:
        payload = WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            server.metrics.deliveries.labels(path, "invalid").inc()
            return _error(400, "Body is not valid JSON.")
        if strict:
            server.metrics.deliveries.labels(path, "invalid").inc()
            fields = [
                {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
                for e in exc.errors()[:20]
            ]
            return _error(422, "Body is not a valid Hub webhook payload.", fields=fields)
    matched = tuple(h.name for h in handlers if payload is None or h.filter.matches(payload))
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "secret"])
    item = Incoming(
        endpoint=path,
        headers=inbox.safe_headers(headers.items()),
        query=query,
        body=body,
        handlers=matched,
        scope=payload.event.scope if payload else None,
        action=payload.event.action if payload else None,
        repo=payload.repo.name if payload else None,
    )
    # Shielded: once the body is in, storing it and starting its jobs must not be cut
    # short by the sender hanging up.
    try:
        stored, tasks = await asyncio.shield(server.accept(item))
    except Exception:
        log.exception("could not store a delivery for %s", path)
        return _error(503, "The inbox is unavailable; the delivery was not stored. Retry.")
    if isinstance(stored, inbox.Duplicate):
        server.metrics.deliveries.labels(path, "duplicate").inc()
        log.info("delivery duplicate path=%s of=%s", path, stored.delivery_id)
        return JSONResponse(
            {"duplicate_of": stored.delivery_id},
            headers={"x-spacehooks-delivery": stored.delivery_id},
        )
    log.info(
        "delivery stored id=%s path=%s scope=%s repo=%s jobs=%d",
        stored.delivery_id,
        path,
        item.scope,
        item.repo,
        len(tasks),
    )
    server.metrics.deliveries.labels(path, "stored" if tasks else "unhandled").inc()
    if not tasks:
        response: Response = JSONResponse({"handled": False, "delivery_id": stored.delivery_id})
    else:
        response = await answer(server, stored, tasks)
    # Whatever the body (a handler's result, as huggingface_hub answers), the id is here.
    response.headers["x-spacehooks-delivery"] = stored.delivery_id
    return response


async def answer(
    server: WebhooksServer, stored: Accepted, tasks: dict[str, asyncio.Task[JobOutcome]]
) -> Response:
    """The handler's result within the ack budget (as huggingface_hub answers), else 202."""
    queued = JSONResponse({"delivery_id": stored.delivery_id, "status": "queued"}, status_code=202)
    # asyncio.wait never cancels what it waits for: past the budget the jobs go on.
    _, pending = await asyncio.wait(tasks.values(), timeout=server.settings.ack_budget)
    if pending:
        return queued
    outcomes = {}
    for name, task in tasks.items():
        if task.cancelled() or task.exception() is not None:
            return queued
        outcomes[name] = task.result()
    if any(o.status != "succeeded" for o in outcomes.values()):
        status = "dead" if all(o.status == "dead" for o in outcomes.values()) else "queued"
        return JSONResponse({"delivery_id": stored.delivery_id, "status": status}, status_code=202)
    if len(outcomes) == 1:
        (result,) = (o.result for o in outcomes.values())
        if isinstance(result, Response):
            return result
        return _json_result(result)
    return _json_result(
        {
            "delivery_id": stored.delivery_id,
            "results": {n: o.result for n, o in outcomes.items()},
        }
    )


def _json_result(value: Any) -> Response:
    from fastapi.encoders import jsonable_encoder

    try:
        return JSONResponse(jsonable_encoder(value))
    except Exception:
        return JSONResponse({"result": repr(value)[:2000]})
