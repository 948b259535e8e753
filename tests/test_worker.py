"""Jobs through the whole app: retries, dead letters, ack budget, replay, pickup after a crash."""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from server import (
    DeliveryContext,
    GiveUp,
    RetryLater,
    RetryPolicy,
    Router,
    WebhookPayload,
    WebhooksServer,
    inbox,
)
from server.db import Database
from tests.conftest import sample

FAST = RetryPolicy(max_attempts=3, base_delay=0.05, jitter=0.25)
BODY = sample("repo-content-main-and-tag.json")


def variant(n: int) -> bytes:
    data = json.loads(BODY)
    data["webhook"]["id"] = f"variant-{n}"
    return json.dumps(data).encode()


def wait_for(client: TestClient, delivery_id: str, status: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        detail = client.get(f"/api/deliveries/{delivery_id}").json()
        if detail["status"] == status:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery stayed {detail['status']!r}: {detail}")
        time.sleep(0.02)


def app_with(router: Router, make_settings, **env) -> WebhooksServer:
    return WebhooksServer(ui=False, settings=make_settings(**env), routers=[router])


def test_failing_job_is_retried_with_backoff_then_succeeds(make_settings) -> None:
    router = Router()
    calls: list[tuple[int, float]] = []

    @router.on("repo.content", retry=FAST)
    def flaky(ctx: DeliveryContext):
        calls.append((ctx.attempt, time.time()))
        if ctx.attempt < 3:
            raise ConnectionError(f"hub unreachable (attempt {ctx.attempt})")
        return "finally"

    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        r = client.post("/webhooks/hub", content=BODY)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        detail = wait_for(client, r.json()["delivery_id"], "succeeded")
    history = detail["jobs"][0]["history"]
    assert [a["outcome"] for a in history] == ["failed", "failed", "succeeded"]
    assert "ConnectionError: hub unreachable (attempt 1)" in history[0]["error"]
    assert "Traceback" in history[0]["traceback"]
    assert detail["jobs"][0]["result"] == "finally"
    # The second wait is about twice the first (0.05 s then 0.1 s, +-25 %).
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(calls)]
    assert gaps[0] >= 0.05 * 0.75 and gaps[1] >= 0.1 * 0.75


def test_exhausted_retries_end_dead_with_the_last_error(make_settings) -> None:
    router = Router()
    router.on("repo", retry=FAST, name="always_fails")(lambda: 1 / 0)
    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        delivery_id = client.post("/webhooks/hub", content=BODY).json()["delivery_id"]
        detail = wait_for(client, delivery_id, "dead")
    job = detail["jobs"][0]
    assert job["attempts"] == 3 and job["status"] == "dead"
    assert job["last_error"] == "ZeroDivisionError: division by zero"


class NotFound(Exception):
    status_code = 404


class Strict(BaseModel):
    required_field: int


@pytest.mark.parametrize(
    "error",
    [GiveUp("repo is gone"), NotFound("no such space"), "validation"],
    ids=["give-up", "hub-404", "validation-error"],
)
def test_errors_that_cannot_succeed_on_retry_go_straight_to_dead(make_settings, error) -> None:
    router = Router()

    @router.on("repo", retry=FAST)
    def handler():
        if error == "validation":
            Strict.model_validate({})
        raise error

    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        r = client.post("/webhooks/hub", content=BODY)
        assert r.json()["status"] == "dead"
        detail = wait_for(client, r.json()["delivery_id"], "dead")
    assert detail["jobs"][0]["attempts"] == 1


def test_a_handler_can_ask_for_a_specific_delay(make_settings) -> None:
    router = Router()
    seen: list[float] = []

    @router.on("repo", retry=FAST)
    def later(ctx: DeliveryContext):
        seen.append(time.time())
        if ctx.attempt == 1:
            raise RetryLater(0.4, "endpoint still initializing")
        return "ok"

    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        r = client.post("/webhooks/hub", content=BODY)
        wait_for(client, r.json()["delivery_id"], "succeeded")
    assert seen[1] - seen[0] >= 0.4


def test_slow_handler_gets_202_within_the_budget_and_finishes_later(make_settings) -> None:
    router = Router()

    @router.on("repo")
    async def slow(ctx: DeliveryContext):
        import asyncio

        await asyncio.sleep(0.6)
        return {"done": ctx.delivery_id}

    app = app_with(router, make_settings, SPACEHOOKS_ACK_BUDGET="0.1")
    with TestClient(app.fastapi_app) as client:
        started = time.monotonic()
        r = client.post("/webhooks/hub", content=BODY)
        assert time.monotonic() - started < 0.5
        assert r.status_code == 202
        detail = wait_for(client, r.json()["delivery_id"], "succeeded")
    assert detail["jobs"][0]["result"] == {"done": r.json()["delivery_id"]}


def test_replay_runs_again_as_a_new_attempt_even_for_a_duplicate(make_settings) -> None:
    router = Router()
    attempts: list[int] = []
    router.on("repo")(lambda ctx: attempts.append(ctx.attempt) or "ran")
    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        first = client.post("/webhooks/hub", content=BODY)
        assert first.json() == "ran"
        delivery_id = wait_for(
            client, client.get("/api/deliveries").json()["items"][0]["id"], "succeeded"
        )["id"]
        dup = client.post("/webhooks/hub", content=BODY)
        assert dup.json() == {"duplicate_of": delivery_id}
        replay = client.post(f"/api/deliveries/{delivery_id}/replay")
        assert replay.status_code == 200 and len(replay.json()["replayed_jobs"]) == 1
        deadline = time.monotonic() + 10
        while len(attempts) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        detail = wait_for(client, delivery_id, "succeeded")
        assert client.post("/api/deliveries/nope/replay").status_code == 404
    assert attempts == [1, 2]
    assert [a["number"] for a in detail["jobs"][0]["history"]] == [1, 2]


def test_replay_all_dead_of_an_endpoint(make_settings) -> None:
    router = Router()
    broken = {"on": True}

    @router.on("repo", retry=RetryPolicy(max_attempts=1))
    def fragile():
        if broken["on"]:
            raise RuntimeError("downstream outage")
        return "recovered"

    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        ids = [
            client.post("/webhooks/hub", content=variant(n)).json()["delivery_id"] for n in range(3)
        ]
        for delivery_id in ids:
            wait_for(client, delivery_id, "dead")
        broken["on"] = False
        replayed = client.post("/api/replay-dead", params={"endpoint": "/webhooks/hub"}).json()
        assert sorted(replayed["replayed_deliveries"]) == sorted(ids)
        for delivery_id in ids:
            wait_for(client, delivery_id, "succeeded")
        assert client.get("/api/deliveries", params={"status": "dead"}).json()["total"] == 0


def test_jobs_interrupted_by_a_crash_run_at_the_next_start(make_settings, tmp_path) -> None:
    settings = make_settings()
    # A previous process stored a delivery, claimed its job, and died before finishing it.
    db = Database(settings.database_url())
    db.create_schema()
    with db.begin() as conn:
        stored = inbox.store(
            conn,
            inbox.Incoming(
                endpoint="/webhooks/hub", headers={}, query="", body=BODY, handlers=("survivor",)
            ),
            worker="dead-process",
            dedupe_window=600,
            claim_ttl=3600,
        )
    db.close()
    router = Router()
    ran: list[str] = []
    router.on("repo", name="survivor")(lambda payload, ctx: ran.append(ctx.delivery_id))
    app = WebhooksServer(ui=False, settings=settings, routers=[router])
    with TestClient(app.fastapi_app) as client:
        wait_for(client, stored.delivery_id, "succeeded")
    assert ran == [stored.delivery_id]


def test_old_succeeded_deliveries_are_pruned_dead_ones_kept(make_settings) -> None:
    settings = make_settings(SPACEHOOKS_RETENTION_DAYS="1")
    db = Database(settings.database_url())
    db.create_schema()
    old = time.time() - 3 * 86400
    with db.begin() as conn:
        for body, outcome in ((b'{"a": 1}', "succeeded"), (b'{"b": 1}', "dead")):
            s = inbox.store(
                conn,
                inbox.Incoming(
                    endpoint="/webhooks/hub",
                    headers={},
                    query="",
                    body=body,
                    handlers=("h",),
                    received_at=old,
                ),
                worker="w",
                dedupe_window=0,
                claim_ttl=60,
            )
            (job,) = inbox.load_claimed(conn, list(s.job_ids.values()), old)
            inbox.finish_job(conn, job=job, worker="w", outcome=outcome, finished_at=old)
    db.close()
    router = Router()
    router.on("repo", name="h")(lambda: None)
    with TestClient(WebhooksServer(ui=False, settings=settings, routers=[router]).fastapi_app) as c:
        deadline = time.monotonic() + 10
        while c.get("/api/deliveries").json()["total"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        (left,) = c.get("/api/deliveries").json()["items"]
    assert left["status"] == "dead"


def test_api_filters_by_time_and_validates_input(make_settings) -> None:
    router = Router()
    router.on("repo")(lambda: None)
    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        client.post("/webhooks/hub", content=BODY)
        now = datetime.now().astimezone().isoformat()
        assert client.get("/api/deliveries", params={"until": now}).json()["total"] == 1
        assert client.get("/api/deliveries", params={"since": now}).json()["total"] == 0
        bad = client.get("/api/deliveries", params={"since": "yesterday"})
        assert bad.status_code == 400 and "ISO 8601" in bad.json()["detail"]
        naive = client.get("/api/deliveries", params={"since": "2026-01-01T00:00:00"})
        assert naive.status_code == 400 and "timezone" in naive.json()["detail"]
        assert client.get("/api/deliveries/unknown").status_code == 404


def test_admin_api_needs_the_token_when_one_is_set(make_settings) -> None:
    router = Router()
    router.on("repo")(lambda: None)
    app = app_with(router, make_settings, SPACEHOOKS_ADMIN_TOKEN="adm-123")
    with TestClient(app.fastapi_app) as client:
        assert client.get("/api/deliveries").status_code == 401
        wrong = client.get("/api/deliveries", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "adm-123" not in wrong.text
        ok = client.get("/api/deliveries", headers={"authorization": "Bearer adm-123"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").json() == {"status": "ready"}


def test_admin_api_refuses_relayed_requests_without_a_token(make_settings) -> None:
    router = Router()
    router.on("repo")(lambda: None)
    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        assert client.get("/api/deliveries").status_code == 200
        relayed = client.get("/api/deliveries", headers={"x-forwarded-for": "203.0.113.9"})
        assert relayed.status_code == 401
    app = app_with(router, make_settings)
    app.tunneled = True  # serve --share: the tunnel reaches loopback from the internet
    with TestClient(app.fastapi_app) as client:
        assert client.get("/api/deliveries").status_code == 401


def test_payload_of_every_attempt_is_the_stored_one(make_settings) -> None:
    router = Router()
    shas: list[str | None] = []

    @router.on("repo.content", retry=FAST)
    def check(payload: WebhookPayload, ctx: DeliveryContext):
        shas.append(payload.repo.head_sha)
        if ctx.attempt == 1:
            raise TimeoutError("first try times out")

    with TestClient(app_with(router, make_settings).fastapi_app) as client:
        r = client.post("/webhooks/hub", content=BODY)
        wait_for(client, r.json()["delivery_id"], "succeeded")
    assert shas == ["575db8b7a51b6f85eb06eee540738584589f131c"] * 2
