"""Webhooks in the sandbox: the management API (hub-api.md 4) and delivery (8).

Every change the state announces becomes a version-3 payload, POSTed with `X-Webhook-Secret`
to each enabled webhook that watches the repo (its owner, org or the repo itself) in the
event's domain. Deliveries run on a worker thread, never inside the request that caused them;
each attempt is recorded (status, duration, response) like the Hub's Activity tab, and can be
replayed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

import requests
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .hub import Access, hub_error, repo_payload
from .state import Discussion, HubState, Repo, Webhook

__all__ = ["Deliveries", "discussion_payload", "make_webhooks_router"]

log = logging.getLogger("spacehooks.sandbox")

DOMAINS = ("repo", "discussion")


def discussion_payload(repo: Repo, discussion: Discussion, base: str) -> dict[str, Any]:
    web = f"{base}/{repo.web_prefix}{repo.repo_id}/discussions/{discussion.num}"
    data: dict[str, Any] = {
        "id": discussion.id,
        "num": discussion.num,
        "title": discussion.title,
        "url": {
            "web": web,
            "api": f"{base}/api/{repo.type}s/{repo.repo_id}/discussions/{discussion.num}",
        },
        "status": discussion.status,
        "author": {"id": discussion.author},
        "isPullRequest": discussion.is_pull_request,
    }
    if discussion.is_pull_request:
        data["changes"] = {"base": discussion.base}
    if discussion.pinned:
        data["pinned"] = True
    return data


class Deliveries:
    """Turns announced changes into deliveries and sends them from one worker thread."""

    def __init__(self, state: HubState, base_url: str = "http://sandbox.invalid") -> None:
        self.state = state
        self.base_url = base_url
        self.session = requests.Session()
        self._queue: queue.Queue[tuple[Webhook, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()
        state.listeners.append(self.announce)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until every queued delivery has been attempted (for tests and demos)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def payload(self, repo: Repo, parts: dict[str, Any], webhook: Webhook) -> dict[str, Any]:
        event = parts["event"]
        repo_json = repo_payload(self.state, repo, self.base_url)
        if event["scope"].startswith("repo") and "main" in repo.branches:
            repo_json["headSha"] = repo.branches["main"]
        payload: dict[str, Any] = {"event": event, "repo": repo_json}
        if "discussion" in parts:
            payload["discussion"] = discussion_payload(repo, parts["discussion"], self.base_url)
        for key in ("comment", "updatedRefs", "updatedConfig", "movedTo"):
            if key in parts:
                payload[key] = parts[key]
        payload["webhook"] = {"id": webhook.id, "version": 3}
        return payload

    @staticmethod
    def watches(webhook: Webhook, repo: Repo, scope: str) -> bool:
        if webhook.disabled or scope.split(".")[0] not in webhook.domains:
            return False
        for item in webhook.watched:
            if item["type"] in ("user", "org") and item["name"] == repo.namespace:
                return True
            if item["type"] == repo.type and item["name"] == repo.repo_id:
                return True
        return False

    def announce(self, repo: Repo, parts: dict[str, Any]) -> None:
        for webhook in list(self.state.webhooks.values()):
            if self.watches(webhook, repo, parts["event"]["scope"]):
                self._queue.put((webhook, self.payload(repo, parts, webhook)))

    def replay(self, webhook: Webhook, attempt_index: int) -> None:
        self._queue.put((webhook, webhook.attempts[attempt_index]["payload"]))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._send(*item)
            finally:
                self._queue.task_done()

    def _send(self, webhook: Webhook, payload: dict[str, Any]) -> None:
        headers = {"content-type": "application/json", "user-agent": "spacehooks-sandbox"}
        if webhook.secret:
            headers["x-webhook-secret"] = webhook.secret
        started = time.monotonic()
        record: dict[str, Any] = {"payload": payload, "at": self.state.clock.iso()}
        try:
            response = self.session.post(
                webhook.url, data=json.dumps(payload), headers=headers, timeout=30
            )
            record.update(status=response.status_code, response=response.text[:2000])
        except requests.RequestException as exc:
            record.update(status=None, response=f"{type(exc).__name__}: {exc}"[:2000])
        record["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        webhook.attempts.append(record)
        log.info("sandbox webhook %s -> %s: %s", payload["event"], webhook.url, record["status"])


def make_webhooks_router(state: HubState, deliveries: Deliveries) -> APIRouter:
    router = APIRouter()
    access = Access(state)

    def owned(request: Request, webhook_id: str) -> tuple[Webhook | None, JSONResponse | None]:
        account = access.required(request)
        if isinstance(account, JSONResponse):
            return None, account
        webhook = state.webhooks.get(webhook_id)
        if webhook is None or webhook.owner != account.name:
            return None, hub_error(404, f"Webhook {webhook_id} not found")
        return webhook, None

    def validate(body: dict[str, Any]) -> str | None:
        for item in body.get("watched", []):
            if item.get("type") not in ("user", "org", "model", "dataset", "space") or not item.get(
                "name"
            ):
                return (
                    f"Invalid watched item {item!r}: type user|org|model|dataset|space and a name."
                )
        unknown = set(body.get("domains") or []) - set(DOMAINS)
        return f"Unknown domains {sorted(unknown)}: use repo, discussion." if unknown else None

    @router.get("/api/settings/webhooks")
    async def list_webhooks(request: Request) -> Any:
        account = access.required(request)
        if isinstance(account, JSONResponse):
            return account
        return [w.json() for w in state.webhooks.values() if w.owner == account.name]

    @router.post("/api/settings/webhooks")
    async def create(request: Request) -> Any:
        account = access.required(request)
        if isinstance(account, JSONResponse):
            return account
        body = await request.json()
        if not body.get("url"):
            return hub_error(400, "A webhook needs a url.")
        if (problem := validate(body)) is not None:
            return hub_error(400, problem)
        webhook = Webhook(
            account.name,
            body["url"],
            list(body.get("watched", [])),
            list(body.get("domains") or DOMAINS),
            body.get("secret"),
        )
        state.webhooks[webhook.id] = webhook
        return {"webhook": webhook.json()}

    @router.get("/api/settings/webhooks/{webhook_id}")
    async def get(webhook_id: str, request: Request) -> Any:
        webhook, error = owned(request, webhook_id)
        return error or {"webhook": webhook.json()}  # type: ignore[union-attr]

    @router.post("/api/settings/webhooks/{webhook_id}")
    async def update(webhook_id: str, request: Request) -> Any:
        webhook, error = owned(request, webhook_id)
        if error:
            return error
        body = await request.json()
        if (problem := validate(body)) is not None:
            return hub_error(400, problem)
        webhook.watched = list(body.get("watched", webhook.watched))  # type: ignore[union-attr]
        for key in ("url", "domains", "secret"):
            if key in body:
                setattr(webhook, key, body[key])
        return {"webhook": webhook.json()}  # type: ignore[union-attr]

    @router.post("/api/settings/webhooks/{webhook_id}/{action}")
    async def toggle(webhook_id: str, action: str, request: Request) -> Any:
        webhook, error = owned(request, webhook_id)
        if error:
            return error
        if action not in ("enable", "disable"):
            return hub_error(404, f"Unknown action {action!r}")
        webhook.disabled = action == "disable"  # type: ignore[union-attr]
        return {"webhook": webhook.json()}  # type: ignore[union-attr]

    @router.delete("/api/settings/webhooks/{webhook_id}")
    async def delete(webhook_id: str, request: Request) -> Any:
        webhook, error = owned(request, webhook_id)
        if error:
            return error
        del state.webhooks[webhook.id]  # type: ignore[union-attr]
        return {}

    @router.get("/_sandbox/webhooks/{webhook_id}/attempts")
    async def attempts(webhook_id: str, request: Request) -> Any:
        webhook, error = owned(request, webhook_id)
        if error:
            return error
        return [{k: v for k, v in a.items()} for a in webhook.attempts]  # type: ignore[union-attr]

    @router.post("/_sandbox/webhooks/{webhook_id}/attempts/{index}/replay")
    async def replay(webhook_id: str, index: int, request: Request) -> Any:
        webhook, error = owned(request, webhook_id)
        if error:
            return error
        if not 0 <= index < len(webhook.attempts):  # type: ignore[union-attr]
            return hub_error(404, f"No attempt {index}")
        deliveries.replay(webhook, index)  # type: ignore[arg-type]
        return {"replayed": index}

    return router
