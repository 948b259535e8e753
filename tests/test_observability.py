from __future__ import annotations

import re
from pathlib import Path

import requests
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from server import HubClient, Router, WebhooksServer
from server.sandbox.app import Sandbox
from tests.conftest import sample
from tests.loopback import serve
from tests.procs import spacehooks

BODY = sample("repo-content-main-and-tag.json")


def test_metrics_count_deliveries_handlers_jobs_and_client_calls(make_settings) -> None:
    sandbox = Sandbox(speed=1000)
    with serve(sandbox.app) as url:
        router = Router()

        @router.on("repo.content", name="to-gpu")
        def to_gpu(hub: HubClient):
            return hub.get_space_runtime("demo/trainer").stage

        settings = make_settings(
            SPACEHOOKS_ADMIN_TOKEN="adm",
            WEBHOOK_SECRET="s",
            HF_ENDPOINT=url,
            HF_TOKEN=sandbox.demo.token,
        )
        app = WebhooksServer(ui=False, settings=settings, routers=[router])
        with TestClient(app.fastapi_app) as client:
            client.post("/webhooks/hub", content=BODY, headers={"x-webhook-secret": "s"})
            client.post("/webhooks/hub", content=BODY, headers={"x-webhook-secret": "s"})
            client.post("/webhooks/hub", content=BODY, headers={"x-webhook-secret": "no"})
            client.post("/webhooks/hub", content=b"{", headers={"x-webhook-secret": "s"})
            assert client.get("/metrics").status_code == 401
            text = client.get("/metrics", headers={"authorization": "Bearer adm"}).text
    sandbox.close()
    for line in [
        'spacehooks_deliveries_total{endpoint="/webhooks/hub",outcome="stored"} 1.0',
        'spacehooks_deliveries_total{endpoint="/webhooks/hub",outcome="duplicate"} 1.0',
        'spacehooks_deliveries_total{endpoint="/webhooks/hub",outcome="refused"} 1.0',
        'spacehooks_deliveries_total{endpoint="/webhooks/hub",outcome="invalid"} 1.0',
        'spacehooks_handler_duration_seconds_count{handler="to-gpu",outcome="succeeded"} 1.0',
        'spacehooks_client_requests_total{service="hub",status="200"} 1.0',
    ]:
        assert line in text, line
    assert re.search(r'spacehooks_jobs\{status="(succeeded|running)"\} 1\.0', text)


def test_no_route_answers_without_credentials_but_public_ones(make_settings) -> None:
    app = WebhooksServer(
        ui=False,
        webhook_secret="s",
        settings=make_settings(SPACEHOOKS_ADMIN_TOKEN="adm"),
        routers=[],
    )
    app.add_webhook("/hook")(lambda: "ran")
    public = {"/healthz", "/readyz"}
    checked = []
    with TestClient(app.fastapi_app) as client:
        for route in app.fastapi_app.routes:
            if not isinstance(route, (APIRoute, Route)):
                continue
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            for method in sorted(route.methods - {"HEAD"}):
                status = client.request(method, path).status_code
                checked.append((method, route.path))
                if route.path in public:
                    assert status == 200, (method, path)
                else:
                    assert status == 401, (method, path, status)
        # The webhook routes answer only with the secret.
        assert client.post("/webhooks/hook", content=BODY).status_code == 401
    assert ("GET", "/api/deliveries") in checked and ("GET", "/metrics") in checked
    assert ("POST", "/api/replay-dead") in checked and len(checked) >= 7


def test_logs_of_a_full_run_hold_neither_the_secret_nor_the_token(tmp_path: Path) -> None:
    sandbox = Sandbox(speed=1000)
    with serve(sandbox.app) as url:
        secret, token = "whsec-very-private-1234", sandbox.demo.token
        env = {
            "WEBHOOK_SECRET": secret,
            "HF_TOKEN": token,
            "HF_ENDPOINT": url,
            "SPACEHOOKS_DB": str(tmp_path / "db"),
            "SPACEHOOKS_ADMIN_TOKEN": "adm-secret-99",
            "SPACEHOOKS_LOG_LEVEL": "DEBUG",
        }
        server = spacehooks(
            "serve", "--no-ui", "--handlers", "tests.apps.leaky", env=env, log=tmp_path / "log"
        )
        try:
            server.wait_ready()
            r = requests.post(
                server.url + "/webhooks/hub",
                data=BODY,
                headers={"x-webhook-secret": secret},
                timeout=10,
            )
            assert r.status_code == 202  # GiveUp: dead at once
            requests.post(
                server.url + "/webhooks/hub",
                data=BODY,
                timeout=10,
                headers={"x-webhook-secret": "wrong-" + secret},
            )
            server.wait_for_output("job dead")
        finally:
            server.stop()
    sandbox.close()
    out = server.output
    assert "acting for demo with token ***" in out and "the secret is ***" in out
    assert secret not in out and token not in out and "adm-secret-99" not in out
