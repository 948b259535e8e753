"""instances_on_schedule against the sandbox provider: started in office hours, scaled by the
hour without a capacity gap, stopped after hours, refused above the cost ceiling."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from handlers.instances_on_schedule import Config, build
from server import ConfigError
from tests.automation import running
from tests.procs import wait_until

LLAMA = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
TUESDAY = datetime(2026, 11, 24, tzinfo=timezone.utc)


def config(**env: str) -> Config:
    found = Config.from_env(
        {
            "INSTANCES_ON_SCHEDULE_MODEL": LLAMA,
            "INSTANCES_ON_SCHEDULE_HARDWARE": "NVIDIA_L4_1",
            "INSTANCES_ON_SCHEDULE_HOURS": "mon-fri 09:00-18:00",
            "INSTANCES_ON_SCHEDULE_WORKERS": "09:00=1,12:00=2",
            "INSTANCES_ON_SCHEDULE_CHECK_SECONDS": "0.1",
            "INSTANCES_ON_SCHEDULE_POLL_SECONDS": "0.01",
            **env,
        }
    )
    assert found is not None
    return found


class Clock:
    def __init__(self, hour: int, minute: int = 0) -> None:
        self.set(hour, minute)

    def set(self, hour: int, minute: int = 0) -> None:
        self.now = TUESDAY.replace(hour=hour, minute=minute)

    def __call__(self) -> datetime:
        return self.now


def test_the_hours_and_workers_are_understood() -> None:
    c = config()
    assert [c.desired_workers(TUESDAY.replace(hour=h)) for h in (8, 9, 11, 12, 17, 18)] == [
        0,
        1,
        1,
        2,
        2,
        0,
    ]
    saturday = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
    assert c.desired_workers(saturday) == 0
    paris = config(INSTANCES_ON_SCHEDULE_TIMEZONE="Europe/Paris")
    assert paris.desired_workers(TUESDAY.replace(hour=8, minute=30)) == 1  # 09:30 in Paris
    assert Config.from_env({}) is None
    with pytest.raises(ConfigError, match="INSTANCES_ON_SCHEDULE_HOURS='weekdays'"):
        config(INSTANCES_ON_SCHEDULE_HOURS="weekdays")
    with pytest.raises(ConfigError, match="20:00 is outside the hours"):
        config(INSTANCES_ON_SCHEDULE_WORKERS="09:00=1,20:00=2")
    with pytest.raises(ConfigError, match="INSTANCES_ON_SCHEDULE_WORKERS='lots'"):
        config(INSTANCES_ON_SCHEDULE_WORKERS="lots")


def live(sandbox_hub) -> list[tuple[str, str, int]]:
    state = sandbox_hub.sandbox.provider
    return sorted(
        (i.status, i.instance_id, i.args["num_workers"])
        for i in state.instances.values()
        if i.status in ("running", "pending")
    )


def test_a_working_day(sandbox_hub, tmp_path: Path) -> None:
    clock = Clock(8)
    with running(sandbox_hub, build(config(), clock), tmp_path / "db", None) as server:
        wait_until(lambda: server.api("/api/schedules")["items"][0]["last_result"] == "succeeded")
        assert live(sandbox_hub) == []  # before the hours: nothing runs

        clock.set(9, 30)
        wait_until(lambda: [w for s, _, w in live(sandbox_hub) if s == "running"] == [1])
        (first,) = live(sandbox_hub)

        clock.set(12, 15)  # two workers from noon: a new instance, then the old one stops
        wait_until(lambda: [(s, w) for s, _, w in live(sandbox_hub)] == [("running", 2)])
        (second,) = live(sandbox_hub)
        assert second[1] != first[1]

        clock.set(18, 5)
        wait_until(lambda: live(sandbox_hub) == [])
        wait_until(lambda: len(server.audit()) == 3)  # recorded just after the stop returns
        actions = [(e["action"], e["outcome"]) for e in server.audit()]
        assert actions == [
            ("start_instance", "done"),
            ("scale_instance", "done"),
            ("stop_instance", "done"),
        ]
        costs = [e["cost_per_hour"] for e in server.audit()]
        assert costs == [1.2, 2.4, 0.0]  # 1.20 per L4 worker


def test_the_cost_ceiling_refuses_a_scale_and_keeps_what_runs(sandbox_hub, tmp_path: Path) -> None:
    clock = Clock(10)
    router = build(config(), clock)
    with running(
        sandbox_hub, router, tmp_path / "db", None, SPACEHOOKS_MAX_HOURLY_COST="2"
    ) as server:
        wait_until(lambda: [w for s, _, w in live(sandbox_hub) if s == "running"] == [1])
        clock.set(13)  # two workers would cost 2.40 an hour
        wait_until(lambda: any(e["outcome"] == "refused" for e in server.audit()))
        refused = next(e for e in server.audit() if e["outcome"] == "refused")
        assert refused["cost_per_hour"] == 2.4 and "2.4" in refused["detail"]
        assert [(s, w) for s, _, w in live(sandbox_hub)] == [("running", 1)]
        time.sleep(0.5)  # several more checks: the refusal is audited once
        assert [e["outcome"] for e in server.audit()].count("refused") == 1
