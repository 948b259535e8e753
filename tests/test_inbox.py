"""The inbox's steps, against a SQLite file and a real PostgreSQL server (`db_url`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from server import inbox, inspection
from server.db import SCHEMA_VERSION, Database, SchemaTooNew, deliveries, jobs, meta
from server.inbox import Accepted, Duplicate, Incoming


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.create_schema()
    yield database
    database.close()


def incoming(body: bytes = b'{"n": 1}', handlers=("h1", "h2"), at: float | None = None, **kw):
    return Incoming(
        endpoint="/webhooks/hub",
        headers=kw.pop("headers", {}),
        query="",
        body=body,
        handlers=handlers,
        received_at=at or time.time(),
        **kw,
    )


def store(db: Database, item: Incoming, window: float = 600, worker: str = "w1"):
    with db.begin() as conn:
        return inbox.store(conn, item, worker=worker, dedupe_window=window, claim_ttl=30)


def finish(db: Database, job, outcome="succeeded", worker="w1", retry_at=None):
    with db.begin() as conn:
        return inbox.finish_job(
            conn,
            job=job,
            worker=worker,
            outcome=outcome,
            finished_at=time.time(),
            retry_at=retry_at,
            error="boom" if outcome != "succeeded" else None,
        )


def claimed(db: Database, stored: Accepted) -> list[inbox.ClaimedJob]:
    with db.begin() as conn:
        return inbox.load_claimed(conn, list(stored.job_ids.values()), time.time())


def claim(db: Database, worker: str = "w2", now: float | None = None, limit: int = 10):
    with db.begin() as conn:
        return inbox.claim_due(
            conn,
            worker=worker,
            now=now or time.time(),
            claim_ttl=30,
            limit=limit,
            handlers=["h1", "h2"],
        )


def test_store_creates_a_delivery_and_one_claimed_job_per_handler(db: Database) -> None:
    stored = store(db, incoming(scope="repo.content", repo="a/b"))
    assert isinstance(stored, Accepted) and set(stored.job_ids) == {"h1", "h2"}
    rows = db.read(lambda c: c.execute(sa.select(jobs)).all())
    assert {(r.status, r.claimed_by) for r in rows} == {("running", "w1")}
    d = db.read(lambda c: c.execute(sa.select(deliveries)).one())
    assert (d.status, d.repo, d.body) == ("running", "a/b", b'{"n": 1}')


def test_no_handler_means_unhandled(db: Database) -> None:
    stored = store(db, incoming(handlers=()))
    assert stored.job_ids == {}
    assert db.read(lambda c: c.execute(sa.select(deliveries.c.status)).scalar()) == "unhandled"


def test_duplicates_within_the_window_or_while_pending(db: Database) -> None:
    first = store(db, incoming())
    again = store(db, incoming())
    assert again == Duplicate(first.delivery_id)
    # Past the window, a delivery still pending is a duplicate...
    assert isinstance(store(db, incoming(at=time.time() + 1000)), Duplicate)
    # ...but once it is done, the same body is a new delivery.
    for job in claimed(db, first):
        finish(db, job)
    assert isinstance(store(db, incoming(at=time.time() + 1000)), Accepted)


def test_sender_delivery_id_is_the_idempotency_key(db: Database) -> None:
    a = store(db, incoming(b'{"n": 1}', headers={"webhook-id": "msg_1"}))
    b = store(db, incoming(b'{"n": 2}', headers={"webhook-id": "msg_1"}))
    c = store(db, incoming(b'{"n": 1}', headers={"webhook-id": "msg_2"}))
    assert b == Duplicate(a.delivery_id) and isinstance(c, Accepted)


def test_retry_becomes_claimable_when_due_not_before(db: Database) -> None:
    stored = store(db, incoming(handlers=("h1",)))
    (job,) = claimed(db, stored)
    assert finish(db, job, "failed", retry_at=time.time() + 60)
    assert claim(db) == []
    (again,) = claim(db, now=time.time() + 61)
    assert (again.job_id, again.attempt) == (job.job_id, 2)
    detail = db.read(lambda c: inspection.delivery_detail(c, stored.delivery_id))
    assert detail["status"] == "running"


def test_expired_claim_is_taken_over_and_the_old_owner_cannot_finish(db: Database) -> None:
    stored = store(db, incoming(handlers=("h1",)))
    (job,) = claimed(db, stored)
    assert claim(db, now=time.time() + 5) == []  # the claim (30 s) is alive
    (taken,) = claim(db, worker="w2", now=time.time() + 31)
    assert taken.job_id == job.job_id
    assert finish(db, job, worker="w1") is False  # w1's claim was lost: it must not clobber
    assert finish(db, taken, worker="w2") is True
    detail = db.read(lambda c: inspection.delivery_detail(c, stored.delivery_id))
    assert [a["outcome"] for a in detail["jobs"][0]["history"]] == ["superseded", "succeeded"]


def test_heartbeat_keeps_a_claim_alive(db: Database) -> None:
    stored = store(db, incoming(handlers=("h1",)))
    with db.begin() as conn:
        held = inbox.renew_claims(
            conn, worker="w1", job_ids=list(stored.job_ids.values()), until=time.time() + 120
        )
    assert held == 1
    assert claim(db, now=time.time() + 60) == []


def test_dead_then_replay_gets_a_fresh_budget_and_a_second_attempt(db: Database) -> None:
    stored = store(db, incoming(handlers=("h1",)))
    (job,) = claimed(db, stored)
    finish(db, job, "dead")
    with db.begin() as conn:
        assert inbox.replay_dead(conn, "/webhooks/hub", now=time.time()) == [stored.delivery_id]
    (again,) = claim(db)
    assert (again.attempt, again.budget_start) == (2, 1)
    finish(db, again, worker="w2")
    detail = db.read(lambda c: inspection.delivery_detail(c, stored.delivery_id))
    assert detail["status"] == "succeeded"
    assert [a["outcome"] for a in detail["jobs"][0]["history"]] == ["dead", "succeeded"]


def test_release_and_restart_reclaim(db: Database) -> None:
    stored = store(db, incoming(handlers=("h1",)))
    with db.begin() as conn:
        assert inbox.release_claims(conn, worker="w1", now=time.time()) == 1
    (job,) = claim(db)
    assert job.job_id == stored.job_ids["h1"]
    with db.begin() as conn:
        assert inbox.reclaim_all_running(conn, now=time.time()) == 1


def test_prune_removes_old_succeeded_keeps_dead(db: Database) -> None:
    old = time.time() - 40 * 86400
    ok = store(db, incoming(b'{"ok": 1}', handlers=("h1",), at=old))
    dead = store(db, incoming(b'{"dead": 1}', handlers=("h1",), at=old))
    recent = store(db, incoming(b'{"new": 1}', handlers=("h1",)))
    for stored, outcome in ((ok, "succeeded"), (dead, "dead"), (recent, "succeeded")):
        for job in claimed(db, stored):
            finish(db, job, outcome)
    with db.begin() as conn:
        assert inbox.prune(conn, older_than=time.time() - 30 * 86400) == 1
    left = set(db.read(lambda c: list(c.execute(sa.select(deliveries.c.id)).scalars())))
    assert left == {dead.delivery_id, recent.delivery_id}


def test_listing_filters_and_pages(db: Database) -> None:
    base = time.time() - 100
    for n in range(7):
        store(
            db,
            incoming(
                f'{{"n": {n}}}'.encode(),
                handlers=("h1",) if n % 2 else (),
                at=base + n,
                repo=f"org/r{n % 3}",
                scope="repo.content",
            ),
        )
    page = db.read(lambda c: inspection.list_deliveries(c, limit=3, offset=0))
    assert page["total"] == 7 and len(page["items"]) == 3
    assert page["items"][0]["received_at"] > page["items"][1]["received_at"]
    assert db.read(lambda c: inspection.list_deliveries(c, status="unhandled"))["total"] == 4
    assert db.read(lambda c: inspection.list_deliveries(c, repo="org/r1"))["total"] == 2
    assert db.read(lambda c: inspection.list_deliveries(c, scope="repo"))["total"] == 7
    assert db.read(lambda c: inspection.list_deliveries(c, since=base + 5))["total"] == 2


def test_newer_schema_is_refused_with_a_clear_message(db: Database, db_url: str) -> None:
    with db.begin() as conn:
        conn.execute(
            meta.update()
            .where(meta.c.key == "schema_version")
            .values(value=str(SCHEMA_VERSION + 1))
        )
    again = Database(db_url)
    with pytest.raises(
        SchemaTooNew, match=rf"schema version {SCHEMA_VERSION + 1}.*Upgrade spacehooks"
    ):
        again.create_schema()
    again.close()


def test_group_commit_batches_concurrent_writes_and_isolates_a_failure(db: Database) -> None:
    db.start_writer()
    futures = [db.submit(lambda c, n=n: store_in(c, n)) for n in range(50)]
    futures.append(db.submit(lambda c: c.execute(sa.text("SELECT * FROM no_such_table"))))
    results = []
    for fut in futures[:-1]:
        results.append(fut.result(timeout=30))
    with pytest.raises(sa.exc.SQLAlchemyError):
        futures[-1].result(timeout=30)
    assert all(isinstance(r, Accepted) for r in results)
    assert (
        db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar())
        == 50
    )


def store_in(conn, n: int):
    return inbox.store(
        conn, incoming(f'{{"n": {n}}}'.encode()), worker="w", dedupe_window=600, claim_ttl=30
    )


@pytest.mark.postgres
def test_concurrent_claims_on_postgres_are_disjoint(postgres) -> None:
    db = Database(postgres.new_database())
    db.create_schema()
    past = time.time() - 100
    for n in range(40):
        stored = store(db, incoming(f'{{"n": {n}}}'.encode(), handlers=("h1",), at=past))
        with db.begin() as conn:
            inbox.release_claims(conn, worker="w1", now=past)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claimer(name: str) -> None:
        barrier.wait()
        mine = []
        while True:
            batch = claim(db, worker=name, limit=3)
            if not batch:
                break
            mine += [j.job_id for j in batch]
        got[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [j for mine in got.values() for j in mine]
    assert len(everything) == 40 == len(set(everything))
    db.close()
    del stored


def test_a_cancelled_waiter_does_not_stop_the_writer(db: Database) -> None:
    import asyncio

    db.start_writer()

    def slow(conn):
        time.sleep(0.2)
        return inbox.store(
            conn, incoming(b'{"slow": 1}'), worker="w", dedupe_window=600, claim_ttl=30
        )

    async def scenario():
        waiter = asyncio.create_task(db.write(slow))
        await asyncio.sleep(0.05)  # the write is in progress in the writer thread
        waiter.cancel()
        # The cancelled write still commits, and the writer takes the next one.
        return await asyncio.wait_for(db.write(lambda c: "still writing"), timeout=10)

    assert asyncio.run(scenario()) == "still writing"
    assert (
        db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar())
        == 1
    )
