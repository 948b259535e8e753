"""endpoint_follows_model end to end: a commit to the sandbox model -> the webhook -> the handler
-> the endpoint on the new revision; a failed deploy rolls back and opens a discussion."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests

from handlers.endpoint_follows_model import Config, build
from server import ConfigError
from tests.automation import running
from tests.procs import wait_until

WATCHED = [{"type": "model", "name": "demo/model"}]


def config(**env: str) -> Config:
    found = Config.from_env(
        {
            "ENDPOINT_FOLLOWS_MODEL_REPO": "demo/model",
            "ENDPOINT_FOLLOWS_MODEL_ENDPOINT": "demo/model-endpoint",
            "ENDPOINT_FOLLOWS_MODEL_POLL_SECONDS": "0.02",
            "ENDPOINT_FOLLOWS_MODEL_TIMEOUT": "20",
            "ENDPOINT_FOLLOWS_MODEL_IDLE_MINUTES": "0",
            **env,
        }
    )
    assert found is not None
    return found


def commit(sandbox_hub) -> str:
    info = sandbox_hub.hub.upload_file(
        path_or_fileobj=uuid.uuid4().hex.encode(),
        path_in_repo="weights.txt",
        repo_id="demo/model",
    )
    return info.oid


def endpoint(sandbox_hub):
    return sandbox_hub.hub.get_inference_endpoint("model-endpoint", namespace="demo")


def test_off_unless_configured_and_checked_at_start() -> None:
    assert Config.from_env({"UNRELATED": "1"}) is None
    with pytest.raises(ConfigError, match="ENDPOINT_FOLLOWS_MODEL_ENDPOINT='model-endpoint'"):
        config(ENDPOINT_FOLLOWS_MODEL_ENDPOINT="model-endpoint")  # needs namespace/name


def test_the_endpoint_follows_main_and_replays_change_nothing(sandbox_hub, tmp_path: Path) -> None:
    with running(sandbox_hub, build(config()), tmp_path / "db", WATCHED) as server:
        first = commit(sandbox_hub)
        wait_until(lambda: endpoint(sandbox_hub).revision == first)
        (delivery,) = server.settled()
        assert endpoint(sandbox_hub).status == "running"
        second = commit(sandbox_hub)
        wait_until(lambda: endpoint(sandbox_hub).revision == second)
        server.settled()
        assert [e["action"] for e in server.audit()] == ["update_inference_endpoint"] * 2

        # The first event again, after main moved on: skipped, the endpoint stays on `second`.
        requests.post(f"{server.url}/api/deliveries/{delivery['id']}/replay", timeout=10)
        wait_until(
            lambda: server.api(f"/api/deliveries/{delivery['id']}")["jobs"][0]["attempts"] == 2
        )
        detail = server.api(f"/api/deliveries/{delivery['id']}")
        assert detail["jobs"][0]["result"]["skipped"].startswith("stale event")
        assert endpoint(sandbox_hub).revision == second
        assert len(server.audit()) == 2


def test_a_failed_deploy_rolls_back_and_opens_a_discussion(sandbox_hub, tmp_path: Path) -> None:
    with running(sandbox_hub, build(config()), tmp_path / "db", WATCHED) as server:
        good = commit(sandbox_hub)
        wait_until(lambda: endpoint(sandbox_hub).revision == good)
        server.settled()
        sandbox_hub.sandbox.endpoints.fail_next_update("demo", "model-endpoint", "CUDA OOM")
        bad = commit(sandbox_hub)
        wait_until(lambda: len(server.audit()) == 4)
        server.settled()
        now = endpoint(sandbox_hub)
        assert now.revision == good
        wait_until(lambda: endpoint(sandbox_hub).status == "running")
        actions = [(e["action"], e["outcome"]) for e in server.audit()]
        assert actions == [
            ("update_inference_endpoint", "done"),
            ("update_inference_endpoint", "done"),  # to the bad revision
            ("update_inference_endpoint", "done"),  # back to the good one
            ("create_discussion", "done"),
        ]
    repo = sandbox_hub.sandbox.state.repo("model", "demo/model")
    (discussion,) = [d for d in repo.discussions if bad[:12] in d.title]
    assert "CUDA OOM" in str(discussion.events) and good in str(discussion.events)


def test_an_idle_endpoint_is_scaled_to_zero(sandbox_hub, tmp_path: Path) -> None:
    router = build(
        config(
            ENDPOINT_FOLLOWS_MODEL_IDLE_MINUTES="0.01",  # 0.6 s
            ENDPOINT_FOLLOWS_MODEL_CHECK_SECONDS="0.2",
        )
    )
    with running(sandbox_hub, router, tmp_path / "db", WATCHED) as server:
        revision = commit(sandbox_hub)
        wait_until(lambda: endpoint(sandbox_hub).revision == revision)
        deployed = time.time()
        wait_until(lambda: endpoint(sandbox_hub).status == "scaledToZero")
        assert time.time() - deployed >= 0.5
        wait_until(lambda: server.audit()[-1]["action"] == "scale_to_zero_inference_endpoint")
        time.sleep(0.5)  # later checks find it already scaled down: one action only
        assert [e["action"] for e in server.audit()].count("scale_to_zero_inference_endpoint") == 1
