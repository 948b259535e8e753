from __future__ import annotations

import io
import logging

import pytest
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

from server import HubClient, Router, WebhookPayload, WebhooksServer
from server.client import (
    Conflict,
    InferenceEndpointError,
    InferenceEndpointTimeoutError,
    SpaceHardware,
    SpaceStage,
    SpaceWaitError,
)
from server.client.http import Progress
from tests.conftest import sample
from tests.fakehub import RUNTIME, FakeHub, endpoint_json


class ScriptedHub(FakeHub):
    """Answers runtime and endpoint GETs from scripts, one state per call (last one repeats)."""

    def __init__(self, runtimes=(), endpoints=(), health=(200,)) -> None:
        super().__init__()
        self.runtimes, self.endpoints, self.health = list(runtimes), list(endpoints), list(health)

    @staticmethod
    def _next(script: list):
        return script.pop(0) if len(script) > 1 else script[0]

    def _answer(self, method, path, body, request):
        if path.endswith("/runtime") and self.runtimes:
            return JSONResponse(self._next(self.runtimes))
        if path.startswith("/v2/endpoint/") and method == "GET" and self.endpoints:
            return JSONResponse(self._next(self.endpoints))
        if path == "/health":
            return JSONResponse({}, status_code=self._next(self.health))
        return super()._answer(method, path, body, request)


def runtime(stage: str, current: str | None = None, requested: str = "t4-small", **extra):
    return {
        **RUNTIME,
        "stage": stage,
        "hardware": {"current": current, "requested": requested},
        **extra,
    }


def test_wait_for_space_follows_the_stages_to_running(caplog) -> None:
    caplog.set_level(logging.INFO, "spacehooks.client")
    script = [runtime("BUILDING"), runtime("APP_STARTING"), runtime("RUNNING", "t4-small")]
    with ScriptedHub(runtimes=script) as hub:
        result = HubClient(hub.url, "hf_x", env={}).wait_for_space(
            "alice/app", hardware=SpaceHardware.T4_SMALL, poll_interval=0.01
        )
    assert result.stage == SpaceStage.RUNNING and result.hardware == "t4-small"
    lines = [r.getMessage() for r in caplog.records if "Waiting for alice/app" in r.getMessage()]
    assert [line.split(": ")[1].split(" (")[0] for line in lines] == [
        "BUILDING on t4-small",
        "APP_STARTING on t4-small",
        "RUNNING on t4-small",
    ]


def test_progress_is_a_live_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    progress = Progress("Waiting", stream=out)
    progress.update("BUILDING")
    progress.close("RUNNING")
    assert out.getvalue().startswith("\rWaiting: BUILDING (0 s)")
    assert out.getvalue().endswith("\n") and "\rWaiting: RUNNING" in out.getvalue()


def test_wait_for_space_raises_on_build_error_with_the_runtime() -> None:
    failed = runtime("BUILD_ERROR", errorMessage="pip install failed: no such package")
    with (
        ScriptedHub(runtimes=[runtime("BUILDING"), failed]) as hub,
        pytest.raises(SpaceWaitError, match="BUILD_ERROR: pip install failed") as info,
    ):
        HubClient(hub.url, "hf_x", env={}).wait_for_space("alice/app", poll_interval=0.01)
    assert info.value.runtime.stage == "BUILD_ERROR"


def test_wait_for_space_times_out_with_a_clear_message() -> None:
    with (
        ScriptedHub(runtimes=[runtime("BUILDING")]) as hub,
        pytest.raises(SpaceWaitError, match=r"still BUILDING after 0.2 s \(waiting for RUNNING"),
    ):
        HubClient(hub.url, "hf_x", env={}).wait_for_space(
            "alice/app", timeout=0.2, poll_interval=0.05
        )


def test_unknown_stage_and_hardware_values_are_kept() -> None:
    with ScriptedHub(runtimes=[runtime("SLEEPING", "h100x8", requested="h100x8")]) as hub:
        rt = HubClient(hub.url, "hf_x", env={}).get_space_runtime("alice/app")
    assert rt.stage == SpaceStage.SLEEPING and rt.hardware == "h100x8"


def endpoint_state(state: str, url: str | None = None, message: str = "ok") -> dict:
    raw = endpoint_json("ep", state)
    raw["status"]["message"] = message
    if url:
        raw["status"]["url"] = url
    else:
        raw["status"].pop("url", None)
    return raw


def test_endpoint_wait_needs_running_url_and_a_healthy_route() -> None:
    with ScriptedHub() as hub:
        hub.endpoints = [
            endpoint_state("pending"),
            endpoint_state("initializing"),
            endpoint_state("running", hub.url),
            endpoint_state("running", hub.url),
        ]
        hub.health = [503, 200]
        api = HubClient(hub.url, "hf_x", env={})
        endpoint = api.get_inference_endpoint("ep", namespace="alice")
        assert endpoint.created_at.microsecond == 123456  # nanoseconds trimmed
        endpoint.wait(timeout=10, fetch_every=0.01)
        assert endpoint.status == "running" and endpoint.url == hub.url
        assert len(hub.find("GET", "/health")) == 2
        assert hub.find("GET", "/health")[0].headers["authorization"] == "Bearer hf_x"


def test_endpoint_wait_raises_on_failure_and_on_timeout() -> None:
    with ScriptedHub() as hub:
        hub.endpoints = [endpoint_state("failed", message="repository not found")]
        api = HubClient(hub.url, "hf_x", env={})
        with pytest.raises(InferenceEndpointError, match="failed to deploy: repository not found"):
            api.get_inference_endpoint("ep", namespace="alice").wait(fetch_every=0.01)
        hub.endpoints = [endpoint_state("initializing")]
        with pytest.raises(InferenceEndpointTimeoutError, match=r"not ready after 0\.1 s"):
            api.get_inference_endpoint("ep", namespace="alice").wait(timeout=0.1, fetch_every=0.02)


def test_resume_of_a_running_endpoint_is_success() -> None:
    with FakeHub() as hub:
        hub.fail("/v2/endpoint/alice/ep/resume", 400, body={"error": "Endpoint is already running"})
        endpoint = HubClient(hub.url, "hf_x", env={}).resume_inference_endpoint(
            "ep", namespace="alice"
        )
    assert endpoint.status == "running"


def test_list_endpoints_in_every_namespace() -> None:
    with FakeHub() as hub:
        found = HubClient(hub.url, "hf_x", env={}).list_inference_endpoints("*")
        assert [e.namespace for e in found] == ["alice", "acme"]


def test_create_repo_exist_ok_and_space_sdk_required() -> None:
    with FakeHub() as hub:
        api = HubClient(hub.url, "hf_x", env={})
        with pytest.raises(ValueError, match="space_sdk is required"):
            api.create_repo("alice/app", repo_type="space")
        hub.fail(
            "/api/repos/create",
            409,
            times=2,
            body={"error": "You already created this model repo", "url": hub.url + "/alice/m"},
        )
        with pytest.raises(Conflict, match="already created"):
            api.create_repo("alice/m")
        url = api.create_repo("alice/m", exist_ok=True)
        assert url == hub.url + "/alice/m" and url.repo_id == "alice/m"
        assert api.create_repo("m").repo_id == "alice/m"  # namespace from whoami


def test_handlers_get_the_servers_hub_client(make_settings) -> None:
    with FakeHub() as hub:
        router = Router()

        @router.on("repo.content")
        def to_gpu(payload: WebhookPayload, hub_client: HubClient):
            return hub_client.request_space_hardware("alice/trainer", "t4-medium").stage

        settings = make_settings(HF_ENDPOINT=hub.url, HF_TOKEN="hf_server_token")
        app = WebhooksServer(ui=False, settings=settings, routers=[router])
        with TestClient(app.fastapi_app) as client:
            r = client.post("/webhooks/hub", content=sample("repo-content-main-and-tag.json"))
        assert r.json() == "RUNNING"
        (call,) = hub.find("POST", "/api/spaces/alice/trainer/hardware")
        assert call.json() == {"flavor": "t4-medium"}
        assert call.headers["authorization"] == "Bearer hf_server_token"
        assert app.hub is app.hub  # one client per server


def test_duplicate_space_and_storage_requests() -> None:
    with FakeHub() as hub:
        api = HubClient(hub.url, "hf_x", env={})
        url = api.duplicate_space(
            "acme/app",
            private=True,
            hardware="t4-small",
            storage="small",
            sleep_time=300,
            secrets=[{"key": "K", "value": "v"}],
            variables=[{"key": "V", "value": "1"}],
        )
        assert url.repo_id == "alice/app"  # your namespace, the source's name
        (call,) = hub.find("POST", "/api/spaces/acme/app/duplicate")
        assert call.json() == {
            "repository": "alice/app",
            "visibility": "private",
            "hardware": "t4-small",
            "storageTier": "small",
            "sleepTimeSeconds": 300,
            "secrets": [{"key": "K", "value": "v"}],
            "variables": [{"key": "V", "value": "1"}],
        }
        hub.fail("/api/spaces/acme/app/duplicate", 409)
        assert api.duplicate_space("acme/app", "acme/copy", exist_ok=True).repo_id == "acme/copy"
        api.request_space_storage("acme/app", "large")
        api.delete_space_storage("acme/app")
    assert hub.find("POST", "/api/spaces/acme/app/storage")[0].json() == {"tier": "large"}
    assert len(hub.find("DELETE", "/api/spaces/acme/app/storage")) == 1


def test_endpoint_object_methods_act_through_its_client() -> None:
    with FakeHub() as hub:
        endpoint = HubClient(hub.url, "hf_x", env={}).get_inference_endpoint("ep", namespace="acme")
        endpoint.pause()
        endpoint.resume()
        endpoint.scale_to_zero()
        endpoint.update(revision="v2", max_replica=3)
        endpoint.fetch()
        endpoint.delete()
    sent = [(r.method, r.path) for r in hub.requests]
    assert sent == [
        ("GET", "/v2/endpoint/acme/ep"),
        ("POST", "/v2/endpoint/acme/ep/pause"),
        ("POST", "/v2/endpoint/acme/ep/resume"),
        ("POST", "/v2/endpoint/acme/ep/scale-to-zero"),
        ("PUT", "/v2/endpoint/acme/ep"),
        ("GET", "/v2/endpoint/acme/ep"),
        ("DELETE", "/v2/endpoint/acme/ep"),
    ]
    assert hub.requests[4].json() == {
        "compute": {"scaling": {"maxReplica": 3}},
        "model": {"revision": "v2"},
    }
