"""One attempt of one job, and what its handler's arguments are built from: the stored
payload (validated into whichever model the handler asks for), the request as it was received
(secrets removed, replayable at any time) and the delivery context."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel

from .context import DeliveryContext, ScheduledRun
from .inbox import ClaimedJob
from .payload import WebhookPayload

__all__ = ["Invocation"]


class Invocation:
    """One attempt of one job: what handler arguments are built from."""

    def __init__(self, job: ClaimedJob, app: FastAPI) -> None:
        self.job = job
        self._app = app
        self._payloads: dict[type, BaseModel] = {}

    def payload(self, model: type[BaseModel] = WebhookPayload) -> BaseModel:
        if model not in self._payloads:
            self._payloads[model] = model.model_validate_json(self.job.body)
        return self._payloads[model]

    @cached_property
    def request(self) -> Request:
        """The webhook request as it was received (secrets removed), replayable any time."""
        job = self.job
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": job.endpoint,
            "raw_path": job.endpoint.encode(),
            "root_path": "",
            "query_string": job.query.encode("latin-1"),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in job.headers.items()],
            "client": None,
            "server": None,
            "app": self._app,
        }
        body = job.body

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        return Request(scope, receive)

    @cached_property
    def context(self) -> DeliveryContext:
        job = self.job
        scheduled_for = None
        if job.endpoint.startswith("schedule:"):
            due = self.payload(ScheduledRun).scheduled_for  # type: ignore[attr-defined]
            scheduled_for = due.timestamp() if due is not None else None
        return DeliveryContext(
            delivery_id=job.delivery_id,
            job_id=job.job_id,
            handler=job.handler,
            endpoint=job.endpoint,
            attempt=job.attempt,
            received_at=job.received_at,
            scheduled_for=scheduled_for,
        )
