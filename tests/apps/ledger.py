"""Handlers for process-level tests: each run appends a line to a ledger file (a side effect
that survives SIGKILL), so a test can count how often each delivery was processed."""

from __future__ import annotations

import json
import os
import random
import time

from server import DeliveryContext, RetryLater, RetryPolicy, Router, WebhookPayload

router = Router()


@router.on("repo.content", name="ledger", retry=RetryPolicy(base_delay=0.05))
def record(payload: WebhookPayload, ctx: DeliveryContext) -> dict:
    if os.environ.get("LEDGER_FAIL_FIRST") and ctx.attempt == 1:
        # The retry is claimed through the shared queue, by whichever replica is first.
        raise RetryLater(0.05, "first attempts fail on purpose")
    time.sleep(random.uniform(0, float(os.environ.get("LEDGER_MAX_SLEEP", "0"))))
    append(
        {
            "key": payload.webhook.id,
            "delivery": ctx.delivery_id,
            "attempt": ctx.attempt,
            "pid": os.getpid(),
        }
    )
    return {"recorded": payload.webhook.id}


def append(record: dict) -> None:
    """One JSON line in the ledger file, on disk before returning."""
    fd = os.open(os.environ["LEDGER_PATH"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
