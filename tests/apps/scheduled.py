"""Schedules and a CommitScheduler for process-level tests, configured by environment:

- SCHEDULE_CRON / SCHEDULE_EVERY (seconds): a schedule named "ticker" that appends each run to
  the ledger at LEDGER_PATH (its due time, pid, attempt, wall time), and reads the runtime of
  the Space TICKER_SPACE when set (so the console lists it under Resources);
- COMMIT_FOLDER: a CommitScheduler pushing that folder to the dataset demo/final-push every
  hour (so only the first push and the final push on SIGTERM happen), through HF_ENDPOINT with
  HF_TOKEN.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from server import CommitScheduler, DeliveryContext, HubClient, Router
from tests.apps.ledger import append

router = Router()


def ticker(ctx: DeliveryContext, hub: HubClient) -> None:
    if os.environ.get("TICKER_SPACE"):
        hub.get_space_runtime(os.environ["TICKER_SPACE"])
    append(
        {
            "run": ctx.run_id,
            "due": ctx.scheduled_for,
            "attempt": ctx.attempt,
            "pid": os.getpid(),
            "at": time.time(),
        }
    )


if os.environ.get("SCHEDULE_CRON"):
    router.schedule(cron=os.environ["SCHEDULE_CRON"], name="ticker")(ticker)
elif os.environ.get("SCHEDULE_EVERY"):
    every = timedelta(seconds=float(os.environ["SCHEDULE_EVERY"]))
    router.schedule(every=every, name="ticker")(ticker)

if os.environ.get("COMMIT_FOLDER"):
    scheduler = CommitScheduler(
        repo_id="demo/final-push",
        repo_type="dataset",
        folder_path=os.environ["COMMIT_FOLDER"],
        every=60,
    )
