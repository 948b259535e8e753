"""Several replicas on one PostgreSQL: every job runs exactly once.

The ledger handler fails each first attempt on purpose, so every job's successful run comes
from the shared queue (`claim_due` with SKIP LOCKED), where both processes compete for it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.conftest import sample_json
from tests.procs import spacehooks

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

N = 60


def test_two_processes_share_the_inbox_and_run_each_job_once(postgres, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    env = {
        "DATABASE_URL": postgres.new_database(),
        "LEDGER_PATH": str(ledger),
        "LEDGER_FAIL_FIRST": "1",
        "SPACEHOOKS_POLL_INTERVAL": "0.05",
        "SPACEHOOKS_CLAIM_TTL": "5",
        "HF_TOKEN": "hf_unused",  # no sandbox Hub: the ledger handler never calls the Hub
    }
    servers = [
        spacehooks(
            "serve", "--no-ui", "--handlers", "tests.apps.ledger", env=env, log=tmp_path / f"log{i}"
        )
        for i in range(2)
    ]
    template = sample_json("repo-content-main-and-tag.json")
    try:
        for s in servers:
            s.wait_ready()
        for n in range(N):
            template["webhook"]["id"] = f"job-{n}"
            r = requests.post(servers[n % 2].url + "/webhooks/hub", json=template, timeout=10)
            assert r.status_code == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = ledger.read_text().splitlines() if ledger.exists() else []
            if len(lines) >= N:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # room for any double run to show up
    finally:
        for s in servers:
            s.stop()
    runs = [json.loads(line) for line in ledger.read_text().splitlines()]
    per_key = Counter(r["key"] for r in runs)
    assert set(per_key) == {f"job-{n}" for n in range(N)}
    assert set(per_key.values()) == {1}, [k for k, c in per_key.items() if c > 1]
    assert {r["attempt"] for r in runs} == {2}
    print("runs per process:", Counter(r["pid"] for r in runs))
