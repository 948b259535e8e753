"""The sandbox's own behaviour, through spacehooks' clients: lifecycles on simulated time,
the Hub's refusals, webhook delivery end to end, faults on demand."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from server import HubClient, Router, WebhookPayload, WebhooksServer
from server.client import (
    BadRequest,
    InferenceEndpointError,
    PreconditionFailed,
    RetryConfig,
)
from server.client.commits import CommitOperationAdd
from server.sandbox.app import Sandbox
from tests.loopback import serve

FAST = RetryConfig(max_retries=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def box() -> Iterator[tuple[Sandbox, str, HubClient]]:
    sandbox = Sandbox(speed=1000)  # a 20 s build takes 20 ms
    with serve(sandbox.app) as url:
        sandbox.base_url = url
        yield sandbox, url, HubClient(url, sandbox.demo.token, env={}, retry=FAST)
    sandbox.close()


def control(url: str, path: str, **kw) -> dict:
    response = requests.post(url + "/_sandbox/" + path, timeout=10, **kw)
    response.raise_for_status()
    return response.json()


def test_hardware_request_goes_through_the_stages_to_running(box) -> None:
    _, _, hub = box
    runtime = hub.request_space_hardware("demo/trainer", "t4-small")
    assert (runtime.stage, runtime.requested_hardware) == ("BUILDING", "t4-small")
    running = hub.wait_for_space("demo/trainer", hardware="t4-small", poll_interval=0.002)
    assert running.hardware == "t4-small" and running.sleep_time is None


def test_paid_hardware_accrues_cost(box) -> None:
    _, url, hub = box
    hub.request_space_hardware("demo/trainer", "t4-medium")
    hub.wait_for_space("demo/trainer", hardware="t4-medium", poll_interval=0.002)
    before = requests.get(url + "/_sandbox/cost", timeout=5).json()["spaces_usd"]
    control(url, "clock/advance", params={"seconds": 3600})
    after = requests.get(url + "/_sandbox/cost", timeout=5).json()["spaces_usd"]
    assert after - before == pytest.approx(0.60, abs=0.01)
    hub.pause_space("demo/trainer")
    control(url, "clock/advance", params={"seconds": 3600})
    paused = requests.get(url + "/_sandbox/cost", timeout=5).json()["spaces_usd"]
    assert paused == pytest.approx(after, abs=0.01)  # a paused Space is not billed


def test_secret_or_variable_change_restarts_the_space(box) -> None:
    _, _, hub = box
    hub.wait_for_space("demo/trainer", poll_interval=0.002)
    hub.add_space_secret("demo/trainer", "TOKEN", "x")
    assert hub.get_space_runtime("demo/trainer").stage == "BUILDING"
    hub.wait_for_space("demo/trainer", poll_interval=0.002)
    variables = hub.add_space_variable("demo/trainer", "MODE", "fast")
    assert variables["MODE"].value == "fast"
    assert hub.get_space_runtime("demo/trainer").stage == "BUILDING"


def test_the_hubs_refusals(box) -> None:
    _, _, hub = box
    with pytest.raises(BadRequest, match=r"Invalid hardware flavor 'h200x9'.*cpu-basic"):
        hub.request_space_hardware("demo/trainer", "h200x9")
    hub.request_space_storage("demo/trainer", "large")
    with pytest.raises(BadRequest, match="Cannot downgrade storage from large to small"):
        hub.request_space_storage("demo/trainer", "small")
    hub.delete_space_storage("demo/trainer")
    assert hub.request_space_storage("demo/trainer", "small").storage == "small"


def test_commits_parent_check_and_pull_requests(box) -> None:
    _, _, hub = box
    first = hub.upload_file(path_or_fileobj=b"v1", path_in_repo="data.txt", repo_id="demo/model")
    hub.upload_file(path_or_fileobj=b"v2", path_in_repo="data.txt", repo_id="demo/model")
    with pytest.raises(PreconditionFailed, match="A commit has happened since"):
        hub.create_commit(
            "demo/model",
            [CommitOperationAdd("data.txt", b"v3")],
            commit_message="stale",
            parent_commit=first.oid,
        )
    pr = hub.create_commit(
        "demo/model",
        [CommitOperationAdd("data.txt", b"proposal")],
        commit_message="Propose v3",
        create_pr=True,
    )
    assert pr.pr_revision == "refs/pr/1"
    assert "data.txt" in hub.list_repo_files("demo/model", revision="refs/pr/1")
    details = hub.get_discussion_details("demo/model", 1)
    assert details.is_pull_request and details.target_branch == "refs/heads/main"


def test_endpoint_progression_and_failure(box) -> None:
    _, _, hub = box
    endpoint = hub.create_inference_endpoint(
        "fresh",
        repository="demo/model",
        framework="pytorch",
        accelerator="gpu",
        instance_size="x1",
        instance_type="nvidia-t4",
        region="us-east-1",
        vendor="aws",
        namespace="demo",
    )
    assert endpoint.status == "pending"
    endpoint.wait(timeout=5, fetch_every=0.005)
    assert endpoint.status == "running"
    assert endpoint.pause().status == "paused"
    assert endpoint.resume().status == "pending"
    broken = hub.create_inference_endpoint(
        "broken",
        repository="nobody/missing",
        framework="pytorch",
        accelerator="gpu",
        instance_size="x1",
        instance_type="nvidia-t4",
        region="us-east-1",
        vendor="aws",
        namespace="demo",
    )
    with pytest.raises(InferenceEndpointError, match="Repository nobody/missing not found"):
        broken.wait(timeout=5, fetch_every=0.005)


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "status", "status": 503, "times": 2},
        {"kind": "status", "status": 429, "retry_after": 1, "times": 1},
        {"kind": "drop", "times": 1},
        {"kind": "slow", "delay": 0.3, "times": 1},
    ],
    ids=["503-twice", "429-retry-after", "dropped", "slow"],
)
def test_faults_on_demand_are_survived_by_the_client(box, rule) -> None:
    _, url, hub = box
    control(url, "faults", json={"path": "/api/spaces/demo/trainer/runtime", **rule})
    started = time.monotonic()
    assert hub.get_space_runtime("demo/trainer").requested_hardware == "cpu-basic"
    if rule.get("retry_after"):
        assert time.monotonic() - started >= 1.0
    if rule["kind"] == "slow":
        assert time.monotonic() - started >= 0.3


def test_a_commit_reaches_a_spacehooks_handler_that_puts_a_space_on_gpu(box, make_settings):
    sandbox, url, hub = box
    router = Router()

    @router.on("repo.content", repo_type="dataset", repos=["demo/corpus"], refs=["refs/heads/main"])
    def train(payload: WebhookPayload, hub: HubClient):
        return hub.request_space_hardware("demo/trainer", "t4-small", sleep_time=3600).stage

    settings = make_settings(
        HF_ENDPOINT=url, HF_TOKEN=sandbox.demo.token, WEBHOOK_SECRET="loop-secret"
    )
    server = WebhooksServer(ui=False, settings=settings, routers=[router])
    with serve(server.fastapi_app, lifespan="on") as hooks_url:
        webhook = hub.create_webhook(
            url=hooks_url + "/webhooks/hub",
            secret="loop-secret",
            watched=[{"type": "dataset", "name": "demo/corpus"}],
            domains=["repo"],
        )
        hub.upload_file(
            path_or_fileobj=b"new rows",
            path_in_repo="train.csv",
            repo_id="demo/corpus",
            repo_type="dataset",
        )
        sandbox.deliveries.wait_idle()
        attempts = requests.get(
            f"{url}/_sandbox/webhooks/{webhook.id}/attempts",
            timeout=5,
            headers={"authorization": f"Bearer {sandbox.demo.token}"},
        ).json()
        assert [a["status"] for a in attempts] == [200]
        payload = attempts[0]["payload"]
        assert payload["event"] == {"action": "update", "scope": "repo.content"}
        assert payload["repo"]["headSha"] == payload["updatedRefs"][0]["newSha"]
        assert payload["webhook"] == {"id": webhook.id, "version": 3}
        runtime = hub.get_space_runtime("demo/trainer")
        assert (runtime.requested_hardware, runtime.sleep_time) == ("t4-small", 3600)
        # A replay from the Activity tab reaches the server again (and is recognised).
        control(
            url,
            f"webhooks/{webhook.id}/attempts/0/replay",
            headers={"authorization": f"Bearer {sandbox.demo.token}"},
        )
        sandbox.deliveries.wait_idle()
        attempts = requests.get(
            f"{url}/_sandbox/webhooks/{webhook.id}/attempts",
            timeout=5,
            headers={"authorization": f"Bearer {sandbox.demo.token}"},
        ).json()
        assert len(attempts) == 2 and "duplicate_of" in attempts[1]["response"]


def test_wrong_secret_deliveries_are_recorded_as_refused(box, make_settings) -> None:
    sandbox, _, hub = box
    router = Router()
    router.on("repo")(lambda: "ran")
    server = WebhooksServer(
        ui=False, settings=make_settings(WEBHOOK_SECRET="right"), routers=[router]
    )
    with serve(server.fastapi_app, lifespan="on") as hooks_url:
        webhook = hub.create_webhook(
            url=hooks_url + "/webhooks/hub",
            secret="wrong",
            watched=[{"type": "user", "name": "demo"}],
        )
        hub.create_discussion("demo/model", "Hello")
        sandbox.deliveries.wait_idle()
    (attempt,) = sandbox.state.webhooks[webhook.id].attempts
    assert attempt["status"] == 403
    assert attempt["payload"]["event"] == {"action": "create", "scope": "discussion"}
    assert attempt["payload"]["comment"]["content"] == "Discussion opened with spacehooks."


def test_repo_lifecycle_events_branches_discussions_and_endpoints(box) -> None:
    sandbox, url, hub = box
    auth = {"authorization": f"Bearer {sandbox.demo.token}"}
    seen: list[dict] = []
    sandbox.state.listeners.append(lambda repo, parts: seen.append({"repo": repo.repo_id, **parts}))
    hub.create_repo("demo/scratch")
    requests.post(
        url + "/api/models/demo/scratch/branch/dev", json={}, headers=auth, timeout=5
    ).raise_for_status()
    assert "dev" in {
        b["name"]
        for b in requests.get(
            url + "/api/models/demo/scratch/refs", headers=auth, timeout=5
        ).json()["branches"]
    }
    requests.put(
        url + "/api/models/demo/scratch/settings",
        json={"visibility": "private"},
        headers=auth,
        timeout=5,
    ).raise_for_status()
    requests.post(
        url + "/api/repos/move",
        json={"fromRepo": "demo/scratch", "toRepo": "demo/renamed", "type": "model"},
        headers=auth,
        timeout=5,
    ).raise_for_status()
    assert hub.repo_info("demo/renamed")["private"] is True
    hub.delete_repo("demo/renamed")
    events = [(e["repo"], e["event"]["action"], e["event"]["scope"]) for e in seen]
    assert events == [
        ("demo/scratch", "create", "repo"),
        ("demo/scratch", "update", "repo.content"),
        ("demo/scratch", "update", "repo.config"),
        ("demo/scratch", "move", "repo"),
        ("demo/renamed", "delete", "repo"),
    ]
    assert seen[2]["updatedConfig"] == {"private": True}
    assert seen[3]["movedTo"]["name"] == "demo/renamed"

    pr = hub.create_pull_request("demo/model", "Add a card")
    assert hub.list_repo_files("demo/model", revision=f"refs/pr/{pr.num}")
    closed = hub.change_discussion_status("demo/model", pr.num, "closed", comment="not now")
    assert closed.type == "status-change"
    hub.change_discussion_status("demo/model", pr.num, "open")
    merged = requests.post(
        f"{url}/api/models/demo/model/discussions/{pr.num}/merge", headers=auth, timeout=5
    ).json()
    assert merged["status"] == "merged"
    assert hub.get_discussion_details("demo/model", pr.num).status == "merged"

    endpoint = hub.get_inference_endpoint("model-endpoint", namespace="demo")
    assert endpoint.status == "running"
    updated = endpoint.update(revision="v2", min_replica=1)
    assert updated.status == "updating" and updated.revision == "v2"
    assert endpoint.scale_to_zero().status == "scaledToZero"
    endpoint.delete()
    assert hub.list_inference_endpoints("demo") == []


def test_upload_folder_deletes_what_matches_and_was_not_uploaded(box, tmp_path) -> None:
    _, _, hub = box
    hub.create_repo("demo/snapshots", repo_type="dataset")
    for name in ("keep.txt", "logs/old.log", "logs/older.log", "other/x.log"):
        hub.upload_file(
            path_or_fileobj=name.encode(),
            path_in_repo=f"snap/{name}",
            repo_id="demo/snapshots",
            repo_type="dataset",
        )
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "new.log").write_text("fresh")
    (tmp_path / "keep.txt").write_text("kept, updated")
    hub.upload_folder(
        repo_id="demo/snapshots",
        repo_type="dataset",
        folder_path=tmp_path,
        path_in_repo="snap",
        delete_patterns=["logs/*.log"],
    )
    files = set(hub.list_repo_files("demo/snapshots", repo_type="dataset"))
    assert files == {".gitattributes", "snap/keep.txt", "snap/logs/new.log", "snap/other/x.log"}
