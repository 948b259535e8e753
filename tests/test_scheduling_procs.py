"""Schedules across process lifetimes: a restart runs what was missed, replicas on PostgreSQL
run each tick once and take over from a dead leader, SIGTERM ends with a final push."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.apps.ledger import read
from tests.procs import spacehooks, wait_until

pytestmark = pytest.mark.slow

APP = ("serve", "--no-ui", "--handlers", "tests.apps.scheduled")


def test_a_restart_runs_the_tick_missed_while_down_once(tmp_path: Path) -> None:
    ledger, db = tmp_path / "ledger", tmp_path / "inbox.db"
    env = {
        "SPACEHOOKS_DB": str(db),
        "LEDGER_PATH": str(ledger),
        "SCHEDULE_CRON": "*/3 * * * * *",  # every 3 seconds (6 fields: seconds first)
        "HF_TOKEN": "hf_unused",
    }
    first = spacehooks(*APP, env=env, log=tmp_path / "first.log")
    first.wait_ready()
    assert first.stop() in (0, -15)  # uvicorn re-raises the SIGTERM it handled
    assert "Application shutdown complete" in first.output
    with sqlite3.connect(db) as conn:
        (due,) = conn.execute(
            "SELECT next_run_time FROM spacehooks_schedules WHERE id = 'ticker'"
        ).fetchone()
    ran_before = {r["due"] for r in read(ledger)}
    assert due not in ran_before
    while time.time() < due + 0.5:  # the tick passes while no process is up
        time.sleep(0.05)

    started = time.time()
    second = spacehooks(*APP, env=env, log=tmp_path / "second.log")
    try:
        second.wait_ready()
        runs = wait_until(lambda: [r for r in read(ledger) if r["pid"] == second.proc.pid])
    finally:
        second.stop()
    late = [r for r in runs if r["due"] < started]
    # The run missed while down happens once (coalesced), due at a tick of the stored
    # schedule: a schedule built afresh at start would have no run due in the past.
    assert len(late) == 1, runs
    assert late[0]["due"] >= due and (late[0]["due"] - due) % 3 == 0
    assert late[0]["at"] - started < 15


@pytest.mark.postgres
def test_replicas_run_each_tick_once_and_take_over_from_a_dead_leader(
    postgres, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    env = {
        "DATABASE_URL": postgres.new_database(),
        "LEDGER_PATH": str(ledger),
        "SCHEDULE_EVERY": "0.5",
        "SPACEHOOKS_LEADER_INTERVAL": "0.5",
        "HF_TOKEN": "hf_unused",
    }
    replicas = [spacehooks(*APP, env=env, log=tmp_path / f"r{i}.log") for i in range(2)]
    try:
        for replica in replicas:
            replica.wait_ready()
        wait_until(lambda: len(read(ledger)) >= 6)
        (leader_pid,) = {r["pid"] for r in read(ledger)}
        leader = next(r for r in replicas if r.proc.pid == leader_pid)
        other = next(r for r in replicas if r is not leader)
        killed_at = time.time()
        leader.kill()
        wait_until(lambda: len([r for r in read(ledger) if r["pid"] == other.proc.pid]) >= 6)
    finally:
        for replica in replicas:
            replica.stop()
    runs = read(ledger)
    per_tick = Counter(r["due"] for r in runs)
    assert max(per_tick.values()) == 1, per_tick.most_common(3)  # each tick ran once
    takeover = min(r["at"] for r in runs if r["pid"] == other.proc.pid)
    print(f"{len(runs)} runs; the standby's first run {takeover - killed_at:.2f} s after the kill")
    # The bound is the leader interval (0.5 s) plus one tick (0.5 s); generous for busy machines.
    assert takeover - killed_at < 10
    dues = sorted(per_tick)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(dues)]
    assert all(g % 0.5 == 0 for g in gaps)  # one schedule, one phase, across both leaders


def test_sigterm_lets_the_commit_scheduler_push_once_more(sandbox_hub, tmp_path: Path) -> None:
    folder = tmp_path / "rows"
    env = {
        "SPACEHOOKS_DB": str(tmp_path / "inbox.db"),
        "COMMIT_FOLDER": str(folder),
        "HF_ENDPOINT": sandbox_hub.url,
        "HF_TOKEN": sandbox_hub.sandbox.demo.token,
        "SPACEHOOKS_ADMIN_TOKEN": "admin-secret",
    }
    server = spacehooks(*APP, env=env, log=tmp_path / "server.log")
    try:
        server.wait_ready()
        # The first push (of an empty folder) has happened: the scheduler is idle until the hour.
        server.wait_for_output("scheduled pushes of")
        (folder / "feedback.jsonl").write_text('{"vote": 1}\n')
    finally:
        code = server.stop()
    assert code in (0, -15), server.output[-2000:]
    assert sandbox_hub.files("demo/final-push", "dataset")["feedback.jsonl"] == b'{"vote": 1}\n'
    assert "final push of 1 CommitScheduler(s)" in server.output
    assert sandbox_hub.sandbox.demo.token not in server.output
