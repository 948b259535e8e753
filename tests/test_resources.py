"""The console's Resources: what the handlers acted on, with its state now, across restarts."""

from __future__ import annotations

import requests

from server import HubClient, InstancesClient, Router, WebhooksServer
from server.sandbox.app import PROVIDER_PATH
from tests.loopback import serve
from tests.procs import wait_until

LLAMA = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"


def test_resources_lists_what_handlers_touched_with_live_state(sandbox_hub, make_settings) -> None:
    token = sandbox_hub.sandbox.demo.token
    settings = make_settings(
        HF_ENDPOINT=sandbox_hub.url,
        HF_TOKEN=token,
        CORTECS_CLIENT_ID="demo-client",
        CORTECS_CLIENT_SECRET=token,
        CORTECS_API_BASE_URL=sandbox_hub.url + PROVIDER_PATH,
    )
    router = Router()

    @router.schedule(cron="0 3 * * *", name="act")
    def act(hub: HubClient, instances: InstancesClient) -> None:
        hub.request_space_hardware("demo/trainer", "t4-small")
        hub.wait_for_space("demo/trainer", hardware="t4-small", poll_interval=0.01)
        hub.get_inference_endpoint("model-endpoint", namespace="demo")
        instances.ensure_instance(
            LLAMA, hardware_type_id="NVIDIA_L4_1", num_workers=2, poll_interval=0.01, timeout=30
        )

    app = WebhooksServer(ui=False, settings=settings, routers=[router])
    with serve(app.fastapi_app, lifespan="on") as url:
        assert requests.get(url + "/api/resources", timeout=10).json() == {"items": []}
        requests.post(url + "/api/schedules/schedule:act/run", timeout=10).raise_for_status()
        wait_until(
            lambda: (
                requests.get(url + "/api/schedules", timeout=5).json()["items"][0]["last_result"]
                == "succeeded"
            ),
            timeout=60,
        )
        items = requests.get(url + "/api/resources", timeout=10).json()["items"]
    by_kind = {item["kind"]: item for item in items}
    assert set(by_kind) == {"space", "endpoint", "instance"}
    space = by_kind["space"]
    assert (space["id"], space["status"], space["hardware"]) == (
        "demo/trainer",
        "RUNNING",
        "t4-small",
    )
    assert space["hourly_cost"] == 0.40  # the Hub's price list for t4-small
    endpoint = by_kind["endpoint"]
    assert endpoint["id"] == "demo/model-endpoint" and endpoint["status"]
    assert endpoint["hourly_cost"] is None  # no price in the endpoint object: shown as unknown
    instance = by_kind["instance"]
    assert instance["status"] == "running" and instance["scale"] == "2 worker(s)"
    assert instance["hourly_cost"] == 2.4  # 1.20 per L4 worker, two workers

    # After a restart, what was touched is still listed (with fresh state), before any handler;
    # what was deleted meanwhile is dropped from the list.
    sandbox_hub.hub.delete_inference_endpoint("model-endpoint", namespace="demo")
    again = WebhooksServer(ui=False, settings=settings, routers=[router])
    with serve(again.fastapi_app, lifespan="on") as url:
        items = requests.get(url + "/api/resources", timeout=10).json()["items"]
        kinds = {(i["kind"], i["id"]) for i in items}
        assert ("space", "demo/trainer") in kinds and "endpoint" not in {k for k, _ in kinds}
        again_items = requests.get(url + "/api/resources", timeout=10).json()["items"]
    assert [i for i in again_items if "error" in str(i["status"])] == []
