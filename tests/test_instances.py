"""InstancesClient against the sandbox's provider, on loopback with a fast simulated clock."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import requests

from server.client.http import RetryConfig
from server.client.instances import (
    CostCeilingExceeded,
    InstancesClient,
    InstanceStopped,
    InstanceTimeout,
    InvalidInstanceArgs,
    MissingCredentials,
    ScaleFailed,
    hf_name_of,
    model_id_of,
)
from server.sandbox import SimClock
from server.sandbox.provider import ProviderState, create_provider_app
from tests.loopback import serve

LLAMA = "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8"
FAST = RetryConfig(max_retries=3, base_delay=0.01, max_delay=0.02)
POLL = {"poll_interval": 0.005, "timeout": 10}


class Provider:
    def __init__(self, state: ProviderState, url: str) -> None:
        self.state, self.url = state, url

    def client(self, **kw) -> InstancesClient:
        kw.setdefault("env", {})
        return InstancesClient("cid", "csecret", base_url=self.url, retry=FAST, **kw)

    def control(self, path: str, **params) -> None:
        requests.post(self.url + "/_sandbox/" + path, params=params, timeout=5).raise_for_status()


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = ProviderState(SimClock(speed=3000))  # a 30 s provisioning step takes 10 ms
    state.issue_client("cid", "csecret")
    with serve(create_provider_app(state)) as url:
        yield Provider(state, url)


def test_model_id_conversion_both_ways() -> None:
    assert model_id_of("cortecs/phi-4-FP8-Dynamic") == "cortecs--phi-4-FP8-Dynamic"
    assert hf_name_of("cortecs--phi-4-FP8-Dynamic") == "cortecs/phi-4-FP8-Dynamic"
    assert model_id_of("cortecs--phi-4-FP8-Dynamic") == "cortecs--phi-4-FP8-Dynamic"


def test_catalogue_needs_no_credentials_but_instances_do(provider: Provider) -> None:
    anonymous = InstancesClient(base_url=provider.url, env={})
    models = anonymous.get_all_models()
    assert {m.hf_name for m in models} >= {LLAMA}
    assert "NVIDIA_L4_1" in next(m for m in models if m.hf_name == LLAMA).hardware_configs
    prices = {h.hardware_type_id: h.price_per_hour for h in anonymous.get_all_hardware_types()}
    assert prices["NVIDIA_L40S_2"] == 3.9
    available = {h.hardware_type_id for h in anonymous.get_available_hardware_types()}
    assert "NVIDIA_H100_8" in prices and "NVIDIA_H100_8" not in available
    with pytest.raises(MissingCredentials, match="CORTECS_CLIENT_ID and CORTECS_CLIENT_SECRET"):
        anonymous.get_all_instances()
    assert provider.state.token_calls == 0


def test_token_is_cached_until_it_expires(provider: Provider) -> None:
    api = provider.client()
    api.get_all_instances()
    api.get_all_instances()
    assert provider.state.token_calls == 1
    provider.state.token_ttl = 150.0  # simulated seconds: 50 ms of real time at this speed
    api._token_expires = 0  # take the next token with the short lifetime
    api.get_all_instances()
    time.sleep(0.1)
    api.get_all_instances()
    assert provider.state.token_calls == 3


def test_token_refreshed_once_on_401(provider: Provider) -> None:
    api = provider.client()
    api.get_all_instances()
    provider.control("expire-tokens")
    assert api.get_all_instances() == []
    assert provider.state.token_calls == 2


def test_wrong_credentials_fail_clearly(provider: Provider) -> None:
    api = InstancesClient("cid", "wrong", base_url=provider.url, env={}, retry=FAST)
    with pytest.raises(Exception, match="wrong client_secret"):
        api.get_all_instances()


def test_provider_5xx_is_retried(provider: Provider) -> None:
    api = provider.client()
    requests.post(
        provider.url + "/_sandbox/faults",
        json={"path": "/instances/", "method": "GET", "status": 503, "times": 2},
        timeout=5,
    ).raise_for_status()
    assert api.get_all_instances() == []


def test_start_and_poll_shows_every_step_to_running(provider: Provider, caplog) -> None:
    caplog.set_level(logging.INFO, "spacehooks.client")
    api = provider.client()
    started = api.start(LLAMA, num_workers=2)
    assert started.status == "pending" and started.base_url is None
    assert started.instance_args.hardware_type_id == "NVIDIA_L40S_1"  # the model's default
    assert started.instance_args.context_length == 32000
    running = api.poll_instance(started.instance_id, poll_interval=0.002)
    assert running.status == "running" and running.base_url
    steps = [r.getMessage() for r in caplog.records if "step" in r.getMessage()]
    assert any("step 1 of 5: Allocating hardware" in s for s in steps)
    assert any("step 5 of 5" in s for s in steps)


def test_poll_times_out_naming_the_step() -> None:
    state = ProviderState(SimClock(speed=1))  # real time: 30 s per step
    state.issue_client("cid", "csecret")
    with serve(create_provider_app(state)) as url:
        api = InstancesClient("cid", "csecret", base_url=url, env={}, retry=FAST)
        started = api.start(LLAMA)
        with pytest.raises(InstanceTimeout, match=r"not running after 0\.2 s \(at step 1 of 5\)"):
            api.poll_instance(started.instance_id, timeout=0.2, poll_interval=0.05)


def test_poll_raises_when_the_instance_stops(provider: Provider) -> None:
    provider.control("fail-next-start")
    api = provider.client()
    started = api.start(LLAMA)
    with pytest.raises(InstanceStopped, match="stopped while starting"):
        api.poll_instance(started.instance_id, **POLL)


def test_ensure_instance_reuses_running(provider: Provider) -> None:
    api = provider.client()
    first = api.ensure_instance(LLAMA, **POLL)
    again = api.ensure_instance(LLAMA, **POLL)
    assert again.instance_id == first.instance_id and len(provider.state.instances) == 1


def test_ensure_instance_waits_for_a_pending_one(provider: Provider) -> None:
    api = provider.client()
    pending = api.start(LLAMA, hardware_type_id="NVIDIA_L4_1")
    result = api.ensure_instance(LLAMA, hardware_type_id="NVIDIA_L4_1", **POLL)
    assert result.instance_id == pending.instance_id and result.status == "running"
    assert len(provider.state.instances) == 1


def test_ensure_instance_restarts_a_stopped_one(provider: Provider) -> None:
    api = provider.client()
    first = api.ensure_instance(LLAMA, **POLL)
    api.stop(first.instance_id)
    again = api.ensure_instance(LLAMA, **POLL)
    assert again.instance_id == first.instance_id and again.status == "running"


def test_ensure_instance_starts_when_nothing_matches(provider: Provider) -> None:
    api = provider.client()
    api.ensure_instance(LLAMA, **POLL)
    other = api.ensure_instance(LLAMA, num_workers=2, **POLL)
    assert other.instance_args.num_workers == 2 and len(provider.state.instances) == 2


def test_scale_has_no_capacity_gap(provider: Provider) -> None:
    api = provider.client()
    old = api.ensure_instance(LLAMA, **POLL)
    new = api.scale(old.instance_id, 3, **POLL)
    assert new.instance_args.num_workers == 3 and new.status == "running"
    old_state = provider.state.instances[old.instance_id]
    new_state = provider.state.instances[new.instance_id]
    assert old_state.status == "stopped"
    assert new_state.started_at <= old_state.stopped_at  # the new one ran before the old stopped


def test_scale_with_a_failing_new_instance_keeps_the_old_one(provider: Provider) -> None:
    api = provider.client()
    old = api.ensure_instance(LLAMA, **POLL)
    provider.control("fail-next-start")
    with pytest.raises(ScaleFailed, match=rf"old instance {old.instance_id} keeps running"):
        api.scale(old.instance_id, 2, **POLL)
    assert api.get_instance(old.instance_id).status == "running"
    others = [i for i in provider.state.instances.values() if i.instance_id != old.instance_id]
    assert [i.status for i in others] == ["stopped"]


def test_cost_ceiling_refuses_before_any_request(provider: Provider) -> None:
    api = provider.client(max_hourly_cost=5.0)
    with pytest.raises(
        CostCeilingExceeded,
        match=r"7\.80 EUR/hour is above "
        r"SPACEHOOKS_MAX_HOURLY_COST=5\.00",
    ) as info:
        api.start(LLAMA, hardware_type_id="NVIDIA_L40S_2", num_workers=2)
    assert (info.value.cost, info.value.ceiling) == (7.8, 5.0)
    assert provider.state.instances == {}
    small = api.ensure_instance(LLAMA, hardware_type_id="NVIDIA_L4_1", **POLL)  # 1.20/hour
    with pytest.raises(CostCeilingExceeded, match="scale to 5 x NVIDIA_L4_1"):
        api.scale(small.instance_id, 5, **POLL)
    assert len(provider.state.instances) == 1


def test_cost_ceiling_from_the_environment(provider: Provider) -> None:
    api = provider.client(env={"SPACEHOOKS_MAX_HOURLY_COST": "1"})
    with pytest.raises(CostCeilingExceeded):
        api.start(LLAMA, hardware_type_id="NVIDIA_L4_1", num_workers=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_workers": 9}, r"num_workers=9 is out of range: use 1 to 8"),
        ({"num_workers": 0}, r"num_workers=0 is out of range"),
        ({"billing_interval": "weekly"}, r"'weekly' is unknown: use one of per_minute, per_hour"),
        (
            {"hardware_type_id": "NVIDIA_H100_8"},
            r"cannot run .*: use one of NVIDIA_H100_1, NVIDIA_L40S_1, NVIDIA_L40S_2, NVIDIA_L4_1",
        ),
        (
            {"hardware_type_id": "NVIDIA_L4_1", "context_length": 20000},
            r"context_length=20000 is above .*maximum of 16000 on NVIDIA_L4_1",
        ),
    ],
)
def test_invalid_arguments_are_refused_before_starting(provider, kwargs, message) -> None:
    with pytest.raises(InvalidInstanceArgs, match=message):
        provider.client().start(LLAMA, **kwargs)
    assert provider.state.instances == {}
    assert provider.state.token_calls == 0


def test_stop_delete_and_bulk_operations(provider: Provider) -> None:
    api = provider.client()
    a = api.start(LLAMA)
    b = api.start(LLAMA, num_workers=2)
    with pytest.raises(Exception, match="stop it first"):
        api.delete(a.instance_id)
    assert sorted(api.stop_all()) == sorted([a.instance_id, b.instance_id])
    assert api.delete(a.instance_id) == a.instance_id
    c = api.start(LLAMA, num_workers=3)
    assert api.delete_all() == [b.instance_id]  # only stopped ones without force
    assert api.delete_all(force=True) == [c.instance_id]
    assert api.get_all_instances() == []
    assert api.get_running_instances() == []


def test_secrets_never_in_reprs_or_errors(provider: Provider) -> None:
    api = provider.client()
    api.get_all_instances()
    assert "csecret" not in repr(api) and api._http._token not in repr(api)


def test_handlers_get_the_servers_instances_client(provider: Provider, make_settings) -> None:
    from fastapi.testclient import TestClient

    from server import Router, WebhooksServer
    from tests.conftest import sample

    router = Router()

    @router.on("repo.content")
    def serve_llm(instances: InstancesClient):
        return instances.ensure_instance(LLAMA, hardware_type_id="NVIDIA_L4_1", **POLL).status

    settings = make_settings(
        CORTECS_CLIENT_ID="cid",
        CORTECS_CLIENT_SECRET="csecret",
        CORTECS_API_BASE_URL=provider.url,
        SPACEHOOKS_MAX_HOURLY_COST="2",
    )
    app = WebhooksServer(ui=False, settings=settings, routers=[router])
    with TestClient(app.fastapi_app) as client:
        r = client.post("/webhooks/hub", content=sample("repo-content-main-and-tag.json"))
    assert r.json() == "running"
    assert app.instances.max_hourly_cost == 2.0 and "csecret" not in repr(app.instances)
