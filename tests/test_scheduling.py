"""Timed automations in one process: timing rules, runs through the inbox, retries, the admin
API (run now, pause, resume). Restarts, replicas and SIGTERM are in test_scheduling_procs.py."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from server import (
    DeliveryContext,
    HubClient,
    RetryLater,
    RetryPolicy,
    Router,
    ScheduledRun,
    WebhookPayload,
    WebhooksServer,
)
from server.timing import make_timing
from tests.loopback import serve
from tests.procs import wait_until

UTC = timezone.utc


def next_fire(cron: str, after: datetime, tz: str = "UTC") -> datetime:
    return make_timing(cron, None, tz, 300).trigger().get_next_fire_time(None, after)


def test_crontab_weekdays_count_from_sunday() -> None:
    tuesday = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert next_fire("0 9 * * 0", tuesday).strftime("%A") == "Sunday"
    assert next_fire("0 9 * * 7", tuesday).strftime("%A") == "Sunday"
    assert next_fire("0 9 * * 1-5", tuesday).strftime("%a %d") == "Wed 25"
    assert next_fire("0 9 * * 5-7", tuesday).strftime("%a %d") == "Fri 27"
    assert next_fire("0 9 * * */3", tuesday).strftime("%a") == "Wed"  # 0,3,6: Sun, Wed, Sat
    assert next_fire("0 9 * * sat", tuesday).strftime("%a") == "Sat"


def test_cron_in_a_timezone_and_with_seconds() -> None:
    noon = datetime(2026, 11, 24, 12, tzinfo=UTC)
    paris = next_fire("0 22 * * *", noon, "Europe/Paris")
    assert paris.astimezone(UTC).hour == 21  # 22:00 in Paris is 21:00 UTC in November
    after = noon + timedelta(seconds=1)
    assert next_fire("*/10 * * * * *", after) == noon + timedelta(seconds=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"cron": "* * * * *", "every": timedelta(minutes=1)}, "exactly one"),
        ({"cron": "* * *"}, "5 fields"),
        ({"cron": "61 * * * *"}, "not valid"),
        ({"cron": "0 0 * * 8"}, "not valid"),
        ({"every": timedelta(0)}, "positive"),
        ({"every": 60}, "timedelta"),
        ({"cron": "0 0 * * *", "timezone": "Mars/Olympus"}, "Unknown timezone"),
        ({"cron": "0 0 * * *", "misfire_grace_time": 0}, "misfire_grace_time"),
    ],
)
def test_bad_schedules_fail_at_decoration_with_the_fix(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Router().schedule(**kwargs)


def test_duplicate_names_are_refused() -> None:
    router = Router()
    router.schedule(every=timedelta(hours=1), name="sweep")(lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        router.schedule(every=timedelta(hours=2), name="sweep")(lambda: None)


def test_a_scheduled_function_cannot_ask_for_a_webhook_payload(make_settings) -> None:
    router = Router()

    @router.schedule(every=timedelta(hours=1))
    def wrong(payload: WebhookPayload) -> None: ...

    app = WebhooksServer(ui=False, settings=make_settings(HF_TOKEN="x"), routers=[router])
    with pytest.raises(TypeError, match="cannot inject parameter 'payload'"):
        app._compile()


def test_runs_go_through_the_inbox_with_injection_and_retries(make_settings) -> None:
    runs: list[tuple] = []
    router = Router()

    @router.schedule(every=timedelta(seconds=0.4), name="tick", retry=RetryPolicy(base_delay=0.05))
    def tick(ctx: DeliveryContext, run: ScheduledRun, hub: HubClient) -> dict:
        runs.append((ctx.run_id, ctx.attempt, ctx.scheduled_for, run.scheduled_for, hub))
        if len(runs) == 1:
            raise RetryLater(0.05, "the first attempt fails on purpose")
        return {"ok": True}

    app = WebhooksServer(ui=False, settings=make_settings(HF_TOKEN="x"), routers=[router])
    with serve(app.fastapi_app, lifespan="on") as url:
        wait_until(lambda: len(runs) >= 3)
        first_id, attempt, due, run_due, hub = runs[0]
        assert attempt == 1 and hub is app.hub
        assert due == run_due.timestamp() and abs(due - time.time()) < 5
        assert runs[1][:2] == (first_id, 2)  # the retry of the same run
        detail = wait_until(
            lambda: (
                (d := requests.get(f"{url}/api/deliveries/{first_id}", timeout=5).json())["status"]
                == "succeeded"
                and d
            )
        )
        assert detail["endpoint"] == "schedule:tick"
        (job,) = detail["jobs"]
        assert [a["outcome"] for a in job["history"]] == ["failed", "succeeded"]
        # Every tick is its own run, each due one interval after the previous.
        dues = sorted({r[2] for r in runs})
        assert all(round(b - a, 1) == 0.4 for a, b in itertools.pairwise(dues))


def test_run_now_pause_and_resume_through_the_admin_api(make_settings) -> None:
    runs: list[ScheduledRun] = []
    router = Router()

    @router.schedule(cron="0 3 * * *", name="nightly")
    def nightly(run: ScheduledRun) -> None:
        runs.append(run)

    app = WebhooksServer(ui=False, settings=make_settings(HF_TOKEN="x"), routers=[router])
    with serve(app.fastapi_app, lifespan="on") as url:
        (row,) = requests.get(f"{url}/api/schedules", timeout=5).json()["items"]
        assert row["key"] == "schedule:nightly" and row["trigger"] == "cron 0 3 * * * (UTC)"
        assert row["next_run"].endswith("T03:00:00+00:00") and not row["paused"]
        assert row["last_run_at"] is None

        r = requests.post(f"{url}/api/schedules/schedule:nightly/run", timeout=5)
        assert r.status_code == 200
        wait_until(lambda: runs)
        assert runs[0].manual and runs[0].scheduled_for is None
        (row,) = wait_until(
            lambda: [
                x
                for x in requests.get(f"{url}/api/schedules", timeout=5).json()["items"]
                if x["last_result"] == "succeeded"
            ]
        )
        assert row["last_delivery"] == r.json()["delivery_id"]

        assert requests.post(f"{url}/api/schedules/schedule:nightly/pause", timeout=5).ok
        (row,) = requests.get(f"{url}/api/schedules", timeout=5).json()["items"]
        assert row["paused"] and row["next_run"] is None
        assert requests.post(f"{url}/api/schedules/schedule:nightly/resume", timeout=5).ok
        (row,) = requests.get(f"{url}/api/schedules", timeout=5).json()["items"]
        assert not row["paused"] and row["next_run"].endswith("T03:00:00+00:00")

        missing = requests.post(f"{url}/api/schedules/schedule:nope/run", timeout=5)
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        bad = requests.post(f"{url}/api/schedules/schedule:nightly/explode", timeout=5)
        assert bad.status_code == 404
