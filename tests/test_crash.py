"""Crash safety: a real server under concurrent load is SIGKILLed at random moments, several
times, and restarted. Every delivery answered 2xx must end up processed (the handler writes a
fsynced ledger line), and a delivery may run again only because a kill interrupted it: at most
one extra run per kill. Bounded: 4 kills of under 1.2 s each, then one drain."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.conftest import sample_json
from tests.procs import spacehooks

pytestmark = pytest.mark.slow

KILLS = 4
SENDERS = 4


def ledger_counts(path: Path) -> Counter:
    if not path.exists():
        return Counter()
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return Counter(json.loads(line)["key"] for line in lines)


def test_no_acknowledged_delivery_is_lost_across_sigkills(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    env = {
        "SPACEHOOKS_DB": str(tmp_path / "inbox.db"),
        "LEDGER_PATH": str(ledger),
        "LEDGER_MAX_SLEEP": "0.05",
        "SPACEHOOKS_ACK_BUDGET": "0.03",  # a mix of 200 (done in time) and 202 (still running)
        "SPACEHOOKS_POLL_INTERVAL": "0.1",
        # An inbox test: no sandbox Hub needed (the ledger handler never calls the Hub).
        "HF_TOKEN": "hf_unused",
    }
    template = sample_json("repo-content-main-and-tag.json")
    acked: set[str] = set()
    answers: Counter = Counter()
    rng = random.Random(7)

    def send(round_no: int, sender: int, url: str, stop: threading.Event) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            key = f"r{round_no}-s{sender}-{n}"
            n += 1
            template_copy = json.loads(json.dumps(template))
            template_copy["webhook"]["id"] = key
            try:
                r = session.post(url + "/webhooks/hub", json=template_copy, timeout=5)
            except requests.RequestException:
                continue
            answers[r.status_code] += 1
            if 200 <= r.status_code < 300:
                acked.add(key)

    for round_no in range(KILLS):
        server = spacehooks(
            "serve",
            "--no-ui",
            "--handlers",
            "tests.apps.ledger",
            env=env,
            log=tmp_path / f"log{round_no}",
        )
        server.wait_ready()
        stop = threading.Event()
        senders = [
            threading.Thread(target=send, args=(round_no, s, server.url, stop))
            for s in range(SENDERS)
        ]
        for t in senders:
            t.start()
        time.sleep(rng.uniform(0.4, 1.2))
        server.kill()
        stop.set()
        for t in senders:
            t.join(10)

    final = spacehooks(
        "serve", "--no-ui", "--handlers", "tests.apps.ledger", env=env, log=tmp_path / "final"
    )
    try:
        final.wait_ready()
        deadline = time.monotonic() + 60
        while not acked <= set(ledger_counts(ledger)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        final.stop()

    counts = ledger_counts(ledger)
    lost = acked - set(counts)
    assert len(acked) > 50, f"too little load to mean anything: {answers}"
    assert not lost, f"{len(lost)} acknowledged deliveries were never processed: {sorted(lost)[:5]}"
    assert max(counts.values()) <= 1 + KILLS
    extra = sum(c - 1 for c in counts.values())
    # Only jobs in flight at a kill can run twice: a handful per kill, not a multiple of the load.
    assert extra <= KILLS * 16, (extra, answers)
    print(f"acked={len(acked)} answers={dict(answers)} processed={len(counts)} extra_runs={extra}")
