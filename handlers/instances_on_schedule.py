"""instances_on_schedule: a dedicated LLM instance on office hours.

During the configured hours an instance of the model runs with the number of workers the
schedule gives for that time of day; outside them it is stopped. A schedule reconciles what
runs with what should, every `INSTANCES_ON_SCHEDULE_CHECK_SECONDS`: it starts (or restarts) the
instance, changes its workers without a capacity gap (the new instance runs before the old one
stops), or stops it. The cost ceiling (`SPACEHOOKS_MAX_HOURLY_COST`) applies: a start or a
scale above it is refused and audited, and the current instance keeps running.

| variable | default | meaning |
| --- | --- | --- |
| INSTANCES_ON_SCHEDULE_MODEL | (off) | the model, e.g. `neuralmagic/Meta-Llama-3.1-8B-Instruct` |
| INSTANCES_ON_SCHEDULE_HARDWARE | (required) | the provider's hardware type, e.g. `NVIDIA_L4_1` |
| INSTANCES_ON_SCHEDULE_HOURS | mon-fri 09:00-18:00 | days and hours it runs, `DAYS HH:MM-HH:MM` |
| INSTANCES_ON_SCHEDULE_TIMEZONE | UTC | the timezone of those hours |
| INSTANCES_ON_SCHEDULE_WORKERS | 1 | workers, or by time of day: `09:00=1,12:00=3,14:00=1` |
| INSTANCES_ON_SCHEDULE_CHECK_SECONDS | 60 | how often what runs is compared with what should |
| INSTANCES_ON_SCHEDULE_POLL_SECONDS | 5 | seconds between status checks while an instance starts |
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from datetime import datetime, time, timedelta, timezone
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from server import Audit, InstancesClient, Router, State
from server.automations import AutomationConfig, router_from_env
from server.client import CostCeilingExceeded, ScaleFailed

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d)$"
)
LIVE = ("running", "pending")


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return time.max
    return time(hours, minutes)


class Config(AutomationConfig):
    switch: ClassVar[str] = "INSTANCES_ON_SCHEDULE_MODEL"

    model: str = Field(alias="INSTANCES_ON_SCHEDULE_MODEL", min_length=3)
    hardware: str = Field(alias="INSTANCES_ON_SCHEDULE_HARDWARE", min_length=1)
    hours: str = Field("mon-fri 09:00-18:00", alias="INSTANCES_ON_SCHEDULE_HOURS")
    timezone: str = Field("UTC", alias="INSTANCES_ON_SCHEDULE_TIMEZONE")
    workers: str = Field("1", alias="INSTANCES_ON_SCHEDULE_WORKERS")
    check_seconds: float = Field(60.0, alias="INSTANCES_ON_SCHEDULE_CHECK_SECONDS", gt=0)
    poll_seconds: float = Field(5.0, alias="INSTANCES_ON_SCHEDULE_POLL_SECONDS", gt=0)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        found = _HOURS.match(value.strip().lower())
        if found is None:
            raise ValueError("expected DAYS HH:MM-HH:MM, e.g. 'mon-fri 09:00-18:00'")
        for part in found["days"].replace("-", ",").split(","):
            if part not in _DAYS:
                raise ValueError(f"{part!r} is not a day; use mon, tue, ... sun")
        start, end = _clock(found["start"]), _clock(found["end"])
        if not start < end:
            raise ValueError("the hours must start before they end, within one day")
        return value.strip().lower()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA timezone such as 'Europe/Paris'") from None
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: str) -> str:
        for step in value.replace(" ", "").split(","):
            count = step.split("=", 1)[-1]
            if not count.isdigit() or not 1 <= int(count) <= 16:
                raise ValueError("expected a count of 1 to 16, or steps such as '09:00=1,12:00=3'")
            if "=" in step and not re.fullmatch(r"\d\d:\d\d", step.split("=", 1)[0]):
                raise ValueError(f"{step!r}: a step is HH:MM=count")
        return value.replace(" ", "")

    @model_validator(mode="after")
    def _steps_inside_hours(self) -> Config:
        start, end = self.window()[1:]
        for at, _ in self.steps():
            if not start <= at < end:
                raise ValueError(f"INSTANCES_ON_SCHEDULE_WORKERS: {at:%H:%M} is outside the hours")
        return self

    def window(self) -> tuple[set[int], time, time]:
        found = _HOURS.match(self.hours)
        assert found is not None
        days: set[int] = set()
        for part in found["days"].split(","):
            first, _, last = part.partition("-")
            a, b = _DAYS.index(first), _DAYS.index(last or first)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        return days, _clock(found["start"]), _clock(found["end"])

    def steps(self) -> list[tuple[time, int]]:
        if "=" not in self.workers:
            return []
        pairs = (step.split("=", 1) for step in self.workers.split(","))
        return sorted((_clock(at), int(count)) for at, count in pairs)

    def desired_workers(self, now: datetime) -> int:
        """Workers that should run at `now` (0: the instance should be stopped)."""
        local = now.astimezone(zoneinfo.ZoneInfo(self.timezone))
        days, start, end = self.window()
        if local.weekday() not in days or not start <= local.time() < end:
            return 0
        steps = self.steps()
        if not steps:
            return int(self.workers)
        count = steps[0][1]
        for at, workers in steps:
            if local.time() >= at:
                count = workers
        return count


def build(config: Config, clock: Callable[[], datetime] | None = None) -> Router:
    """`clock` gives the current time (tests give their own)."""
    router = Router()
    now = clock or (lambda: datetime.now(timezone.utc))
    poll = {"poll_interval": config.poll_seconds, "timeout": 900.0}

    @router.schedule(every=timedelta(seconds=config.check_seconds), name="instances_on_schedule")
    def reconcile(instances: InstancesClient, audit: Audit, state: State) -> dict[str, Any]:
        desired = config.desired_workers(now())
        args = instances.resolve_args(config.model, config.hardware, None, None, desired or 1)
        ours = [
            i
            for i in instances.get_all_instances()
            if i.instance_args.model_id == args.model_id
            and i.instance_args.hardware_type_id == args.hardware_type_id
            and i.status in LIVE
        ]
        if desired == 0:
            for instance in ours:
                audit.once(
                    "stop_instance",
                    f"instance {instance.instance_id}",
                    lambda i=instance: instances.stop(i.instance_id),
                    key=f"instances_on_schedule:stop:{instance.instance_id}",
                    cost_per_hour=0.0,
                    detail={"reason": "outside the hours", "hours": config.hours},
                )
            return {"desired": 0, "stopped": [i.instance_id for i in ours]}
        cost, currency = instances.hourly_cost(args)
        try:
            if not ours:
                started = instances.ensure_instance(
                    config.model, config.hardware, num_workers=desired, **poll
                )
                audit.record(
                    "start_instance",
                    f"instance {started.instance_id}",
                    cost_per_hour=cost,
                    detail={"workers": desired, "currency": currency, "model": config.model},
                )
                return {"desired": desired, "started": started.instance_id}
            current = ours[0]
            if current.instance_args.num_workers != desired:
                scaled = instances.scale(current.instance_id, desired, **poll)
                audit.record(
                    "scale_instance",
                    f"instance {scaled.instance_id}",
                    cost_per_hour=cost,
                    detail={
                        "from": current.instance_id,
                        "workers": [current.instance_args.num_workers, desired],
                        "currency": currency,
                    },
                )
                return {"desired": desired, "scaled": scaled.instance_id}
        except (CostCeilingExceeded, ScaleFailed) as exc:
            # Audited once per refused change, not at every check while it stays refused.
            refusal = {"workers": desired, "running": [i.instance_id for i in ours]}
            if state.get("instances_on_schedule:refused") != refusal:
                audit.record(
                    "start_instance" if not ours else "scale_instance",
                    f"model {config.model}",
                    outcome="refused" if isinstance(exc, CostCeilingExceeded) else "failed",
                    cost_per_hour=cost,
                    detail={"workers": desired, "error": str(exc)},
                )
                state.put("instances_on_schedule:refused", refusal)
            return {"desired": desired, "refused": str(exc)}
        state.delete("instances_on_schedule:refused")
        return {"desired": desired, "running": current.instance_id}

    return router


router = router_from_env(Config, build)
