"""gpu_on_update: retrain on new data.

When the watched repo gets a commit on the watched branch, the training Space is put on GPU
hardware with a task id; it goes back to `cpu-basic` when the Space reports the task done, or
when the maximum duration has passed, whichever comes first. The deadline is stored in the
database and checked by a schedule, so paid hardware is never left running past it, across
restarts of spacehooks too.

The Space's side of the protocol: at start it reads the task id from its `SPACEHOOKS_TASK`
variable, trains, and when it is done sets the variable `SPACEHOOKS_TASK_DONE` to that id (with
a write token: `HfApi().add_space_variable(space_id, "SPACEHOOKS_TASK_DONE", task_id)`).

A commit while a task runs does not start a second one (it is audited as skipped); the data it
brought is in the next run. A retried, duplicated or replayed delivery never starts a task twice.

| variable | default | meaning |
| --- | --- | --- |
| GPU_ON_UPDATE_REPO | (off) | the repo whose commits start a training, e.g. `acme/corpus` |
| GPU_ON_UPDATE_REPO_TYPE | dataset | its type: dataset, model or space |
| GPU_ON_UPDATE_BRANCH | main | the branch to watch |
| GPU_ON_UPDATE_SPACE | (required) | the training Space, e.g. `acme/trainer` |
| GPU_ON_UPDATE_HARDWARE | (required) | the GPU flavor, e.g. `t4-small`, `a10g-large` |
| GPU_ON_UPDATE_MAX_MINUTES | 120 | back to cpu-basic after this long, done or not |
| GPU_ON_UPDATE_SLEEP_TIME | 3600 | the Space's sleep time on the GPU, in seconds |
| GPU_ON_UPDATE_CHECK_SECONDS | 60 | how often the schedule looks for done or expired tasks |
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import ClassVar

from pydantic import Field, field_validator

from server import Audit, DeliveryContext, HubClient, Router, State, WebhookPayload
from server.automations import REPO_ID, AutomationConfig, router_from_env

TASK_VARIABLE = "SPACEHOOKS_TASK"
DONE_VARIABLE = "SPACEHOOKS_TASK_DONE"
FREE_HARDWARE = "cpu-basic"


class Config(AutomationConfig):
    switch: ClassVar[str] = "GPU_ON_UPDATE_REPO"

    repo: str = Field(alias="GPU_ON_UPDATE_REPO", pattern=REPO_ID)
    repo_type: str = Field(
        "dataset", alias="GPU_ON_UPDATE_REPO_TYPE", pattern="^(dataset|model|space)$"
    )
    branch: str = Field("main", alias="GPU_ON_UPDATE_BRANCH", min_length=1)
    space: str = Field(alias="GPU_ON_UPDATE_SPACE", pattern=REPO_ID)
    hardware: str = Field(alias="GPU_ON_UPDATE_HARDWARE", min_length=1)
    max_minutes: float = Field(120.0, alias="GPU_ON_UPDATE_MAX_MINUTES", gt=0)
    sleep_time: int = Field(3600, alias="GPU_ON_UPDATE_SLEEP_TIME", gt=0)
    check_seconds: float = Field(60.0, alias="GPU_ON_UPDATE_CHECK_SECONDS", gt=0)

    @field_validator("hardware")
    @classmethod
    def _paid(cls, value: str) -> str:
        if value.startswith("cpu"):
            raise ValueError("expected a GPU flavor such as t4-small or a10g-large")
        return value


def build(config: Config) -> Router:
    router = Router()
    task_key = f"gpu_on_update:task:{config.space}"
    target = f"space {config.space}"

    @router.on(
        "repo.content",
        repo_type=config.repo_type,
        repos=config.repo,
        refs=f"refs/heads/{config.branch}",
        name="gpu_on_update",
    )
    def start_training(
        payload: WebhookPayload, ctx: DeliveryContext, hub: HubClient, audit: Audit, state: State
    ) -> dict:
        seen = state.get(f"gpu_on_update:delivery:{ctx.delivery_id}")
        task = state.get(task_key)
        if seen is None and task is not None and task["status"] == "running":
            audit.record(
                "start_training",
                target,
                outcome="skipped",
                detail={"reason": "a training task is already running", "task": task["task"]},
            )
            return {"skipped": "a training task is already running", "task": task["task"]}
        if seen is None:
            now = time.time()
            task = {
                "task": uuid.uuid4().hex[:12],
                "status": "running",
                "delivery": ctx.delivery_id,
                "revision": payload.repo.headSha,
                "started_at": now,
                # Stored before paid hardware is asked for: the schedule always knows the end.
                "deadline": now + config.max_minutes * 60,
            }
            state.put(task_key, task)
            state.put(f"gpu_on_update:delivery:{ctx.delivery_id}", task["task"])
        elif task is None or task["task"] != seen or task["status"] != "running":
            return {"skipped": "this delivery's task is over", "task": seen}
        audit.once(
            "add_space_variable",
            target,
            lambda: hub.add_space_variable(config.space, TASK_VARIABLE, task["task"]),
            detail={"key": TASK_VARIABLE, "value": task["task"]},
        )
        audit.once(
            "request_space_hardware",
            target,
            lambda: hub.request_space_hardware(
                config.space, config.hardware, sleep_time=config.sleep_time
            ),
            cost_per_hour=hub.space_hardware_prices().get(config.hardware),
            detail={"hardware": config.hardware, "task": task["task"]},
        )
        return {"task": task["task"], "hardware": config.hardware}

    @router.schedule(every=timedelta(seconds=config.check_seconds), name="gpu_on_update.sweep")
    def finish_training(hub: HubClient, audit: Audit, state: State) -> dict:
        task = state.get(task_key)
        if task is None or task["status"] != "running":
            return {"running": False}
        done = hub.get_space_variables(config.space).get(DONE_VARIABLE)
        reason = None
        if done is not None and done.value == task["task"]:
            reason = "the Space reported the task done"
        elif time.time() >= task["deadline"]:
            reason = f"the maximum of {config.max_minutes:g} minutes has passed"
        if reason is None:
            return {"running": True, "task": task["task"]}
        audit.once(
            "request_space_hardware",
            target,
            lambda: hub.request_space_hardware(config.space, FREE_HARDWARE),
            key=f"gpu_on_update:{task['task']}:release",
            cost_per_hour=0.0,
            detail={"hardware": FREE_HARDWARE, "task": task["task"], "reason": reason},
        )
        state.put(
            task_key, {**task, "status": "finished", "finished_at": time.time(), "reason": reason}
        )
        return {"finished": task["task"], "reason": reason}

    return router


router = router_from_env(Config, build)
