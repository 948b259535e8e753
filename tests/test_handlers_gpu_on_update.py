"""gpu_on_update end to end: a commit to the sandbox dataset -> the webhook -> the handler ->
the training Space on GPU; back to cpu-basic when done or at the deadline, even after a restart."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests

from handlers.gpu_on_update import Config, build
from server import ConfigError
from tests.automation import running
from tests.procs import wait_until

WATCHED = [{"type": "dataset", "name": "demo/corpus"}]


def config(**env: str) -> Config:
    base = {
        "GPU_ON_UPDATE_REPO": "demo/corpus",
        "GPU_ON_UPDATE_SPACE": "demo/trainer",
        "GPU_ON_UPDATE_HARDWARE": "t4-small",
        "GPU_ON_UPDATE_CHECK_SECONDS": "0.2",
        **env,
    }
    found = Config.from_env(base)
    assert found is not None
    return found


def commit(sandbox_hub) -> None:
    sandbox_hub.hub.upload_file(
        path_or_fileobj=b'{"text": "new row"}\n',
        path_in_repo=f"rows-{uuid.uuid4().hex[:8]}.jsonl",
        repo_id="demo/corpus",
        repo_type="dataset",
    )


def requested(sandbox_hub) -> str | None:
    return sandbox_hub.hub.get_space_runtime("demo/trainer").requested_hardware


def test_off_unless_configured_and_checked_at_start() -> None:
    assert Config.from_env({}) is None
    with pytest.raises(ConfigError, match="GPU_ON_UPDATE_SPACE") as error:
        Config.from_env({"GPU_ON_UPDATE_REPO": "demo/corpus", "GPU_ON_UPDATE_HARDWARE": "t4"})
    assert str(error.value).startswith("gpu_on_update is misconfigured")
    with pytest.raises(ConfigError, match=r"GPU_ON_UPDATE_HARDWARE='cpu-upgrade'.*GPU flavor"):
        config(GPU_ON_UPDATE_HARDWARE="cpu-upgrade")
    with pytest.raises(ConfigError, match="GPU_ON_UPDATE_MAX_MINUTES='soon'"):
        config(GPU_ON_UPDATE_MAX_MINUTES="soon")


def test_a_commit_trains_on_gpu_until_the_space_reports_done(sandbox_hub, tmp_path: Path) -> None:
    hub = sandbox_hub.hub
    with running(sandbox_hub, build(config()), tmp_path / "db", WATCHED) as server:
        commit(sandbox_hub)
        wait_until(lambda: requested(sandbox_hub) == "t4-small")
        task = hub.get_space_variables("demo/trainer")["SPACEHOOKS_TASK"].value

        commit(sandbox_hub)  # more data while it trains: no second task
        first, *_ = sorted(server.settled(), key=lambda d: d["received_at"])
        wait_until(lambda: any(e["outcome"] == "skipped" for e in server.audit()))

        hub.add_space_variable("demo/trainer", "SPACEHOOKS_TASK_DONE", task)  # the Space's side
        wait_until(lambda: requested(sandbox_hub) == "cpu-basic")
        wait_until(lambda: len(server.audit()) == 4)  # recorded just after the call returns
        actions = [(e["action"], e["outcome"], e["cost_per_hour"]) for e in server.audit()]
        assert actions == [
            ("add_space_variable", "done", None),
            ("request_space_hardware", "done", 0.40),  # the Hub's price for t4-small
            ("start_training", "skipped", None),
            ("request_space_hardware", "done", 0.0),
        ]
        assert "reported the task done" in server.audit()[-1]["detail"]

        # A replay of the first delivery takes no action: the Space stays on cpu-basic.
        r = requests.post(f"{server.url}/api/deliveries/{first['id']}/replay", timeout=10)
        assert r.status_code == 200
        wait_until(lambda: server.api(f"/api/deliveries/{first['id']}")["jobs"][0]["attempts"] == 2)
        server.settled()
        time.sleep(0.5)  # two sweeps
        assert len(server.audit()) == len(actions)
        assert requested(sandbox_hub) == "cpu-basic"


def test_paid_hardware_is_released_at_the_deadline_across_a_restart(
    sandbox_hub, tmp_path: Path
) -> None:
    router = build(config(GPU_ON_UPDATE_MAX_MINUTES="0.02"))  # 1.2 s
    db = tmp_path / "db"
    with running(sandbox_hub, router, db, WATCHED) as server:
        commit(sandbox_hub)
        wait_until(lambda: requested(sandbox_hub) == "t4-small")
        started = wait_until(lambda: len(server.audit()) == 2 and server.audit()[-1])["at"]
    # spacehooks is down while the deadline passes; the GPU is still on.
    wait_until(lambda: time.time() > started + 1.5)
    assert requested(sandbox_hub) == "t4-small"
    with running(sandbox_hub, build(config(GPU_ON_UPDATE_MAX_MINUTES="0.02")), db, None) as again:
        wait_until(lambda: requested(sandbox_hub) == "cpu-basic")
        (release,) = wait_until(lambda: [e for e in again.audit() if e["cost_per_hour"] == 0.0])
        assert "maximum of 0.02 minutes" in release["detail"]
