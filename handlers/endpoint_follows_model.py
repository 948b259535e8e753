"""endpoint_follows_model: continuous deployment of a model to an Inference Endpoint.

When the model's branch moves, the endpoint is updated to the new revision, resumed if it was
paused or scaled to zero, and waited for until it runs. If the new revision fails to deploy (or
does not run within the timeout), the endpoint goes back to the previous revision and a
discussion is opened on the model with the error. A schedule scales the endpoint to zero once
no new revision has been deployed for the idle period (the endpoint's own scale-to-zero
setting, if any, still applies on top).

A redelivered or replayed event does nothing twice, and an old event that arrives after the
branch has moved on is skipped, so the endpoint never goes back to a stale revision.

| variable | default | meaning |
| --- | --- | --- |
| ENDPOINT_FOLLOWS_MODEL_REPO | (off) | the model repo, e.g. `acme/classifier` |
| ENDPOINT_FOLLOWS_MODEL_ENDPOINT | (required) | the endpoint, `namespace/name` |
| ENDPOINT_FOLLOWS_MODEL_BRANCH | main | the branch to follow |
| ENDPOINT_FOLLOWS_MODEL_TIMEOUT | 1800 | seconds to wait for the new revision to run |
| ENDPOINT_FOLLOWS_MODEL_POLL_SECONDS | 10 | seconds between status checks while waiting |
| ENDPOINT_FOLLOWS_MODEL_IDLE_MINUTES | 60 | scale to zero after this long with no deploy (0: off) |
| ENDPOINT_FOLLOWS_MODEL_CHECK_SECONDS | 60 | how often the idle schedule looks |
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from server import Audit, DeliveryContext, HubClient, Router, State, WebhookPayload
from server.automations import REPO_ID, AutomationConfig, router_from_env
from server.client import InferenceEndpointError, InferenceEndpointTimeoutError

HELD = ("paused", "scaledToZero")


class Config(AutomationConfig):
    switch: ClassVar[str] = "ENDPOINT_FOLLOWS_MODEL_REPO"

    model: str = Field(alias="ENDPOINT_FOLLOWS_MODEL_REPO", pattern=REPO_ID)
    endpoint: str = Field(alias="ENDPOINT_FOLLOWS_MODEL_ENDPOINT", pattern=REPO_ID)
    branch: str = Field("main", alias="ENDPOINT_FOLLOWS_MODEL_BRANCH", min_length=1)
    timeout: float = Field(1800.0, alias="ENDPOINT_FOLLOWS_MODEL_TIMEOUT", gt=0)
    poll_seconds: float = Field(10.0, alias="ENDPOINT_FOLLOWS_MODEL_POLL_SECONDS", gt=0)
    idle_minutes: float = Field(60.0, alias="ENDPOINT_FOLLOWS_MODEL_IDLE_MINUTES", ge=0)
    check_seconds: float = Field(60.0, alias="ENDPOINT_FOLLOWS_MODEL_CHECK_SECONDS", gt=0)

    @property
    def namespace(self) -> str:
        return self.endpoint.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.endpoint.split("/", 1)[1]


def build(config: Config) -> Router:
    router = Router()
    ref = f"refs/heads/{config.branch}"
    target = f"endpoint {config.endpoint}"
    deployed_key = f"endpoint_follows_model:{config.endpoint}"

    @router.on(
        "repo.content",
        repo_type="model",
        repos=config.model,
        refs=ref,
        name="endpoint_follows_model",
    )
    def deploy(
        payload: WebhookPayload, ctx: DeliveryContext, hub: HubClient, audit: Audit, state: State
    ) -> dict:
        new = next((r.newSha for r in payload.updatedRefs or () if r.ref == ref), None)
        if not new:
            return {"skipped": f"{ref} was deleted, or not updated"}
        head = hub.repo_info(config.model, revision=config.branch)["sha"]
        if head != new:
            return {"skipped": f"stale event: {config.branch} is now at {head[:12]}"}
        endpoint = hub.get_inference_endpoint(config.name, namespace=config.namespace)
        previous = endpoint.revision
        if previous == new and endpoint.status not in HELD:
            state.put(deployed_key, {"revision": new, "at": time.time()})
            return {"unchanged": new}
        audit.once(
            "update_inference_endpoint",
            target,
            lambda: hub.update_inference_endpoint(
                config.name, namespace=config.namespace, revision=new
            ),
            detail={"from": previous, "to": new},
        )
        current = hub.get_inference_endpoint(config.name, namespace=config.namespace)
        if current.status in HELD:
            audit.once(
                "resume_inference_endpoint",
                target,
                lambda: hub.resume_inference_endpoint(config.name, namespace=config.namespace),
            )
        try:
            hub.get_inference_endpoint(config.name, namespace=config.namespace).wait(
                timeout=config.timeout, fetch_every=config.poll_seconds
            )
        except (InferenceEndpointError, InferenceEndpointTimeoutError) as exc:
            return roll_back(ctx, hub, audit, new, previous, str(exc))
        state.put(deployed_key, {"revision": new, "at": time.time()})
        return {"deployed": new}

    def roll_back(
        ctx: DeliveryContext,
        hub: HubClient,
        audit: Audit,
        new: str,
        previous: str | None,
        error: str,
    ) -> dict:
        if previous:
            audit.once(
                "update_inference_endpoint",
                target,
                lambda: hub.update_inference_endpoint(
                    config.name, namespace=config.namespace, revision=previous
                ),
                key=f"{ctx.delivery_id}:rollback",
                detail={"from": new, "to": previous, "reason": error},
            )
        back = (
            f"It was rolled back to `{previous}`."
            if previous
            else "There was no revision to roll back to."
        )
        audit.once(
            "create_discussion",
            f"model {config.model}",
            lambda: hub.create_discussion(
                config.model,
                f"Deploying {new[:12]} to the Inference Endpoint {config.endpoint} failed",
                description=(
                    f"spacehooks updated `{config.endpoint}` to revision `{new}`, and the "
                    f"deployment failed:\n\n```\n{error}\n```\n\n{back}"
                ),
            ),
            key=f"{ctx.delivery_id}:discussion",
        )
        return {"rolled_back": previous, "failed": new, "error": error}

    if config.idle_minutes > 0:

        @router.schedule(
            every=timedelta(seconds=config.check_seconds), name="endpoint_follows_model.idle"
        )
        def scale_down_when_idle(hub: HubClient, audit: Audit, state: State) -> dict:
            last = state.get(deployed_key)
            if last is None or time.time() - last["at"] < config.idle_minutes * 60:
                return {"idle": False}
            endpoint = hub.get_inference_endpoint(config.name, namespace=config.namespace)
            if endpoint.status in HELD:
                return {"idle": True, "status": endpoint.status}
            audit.once(
                "scale_to_zero_inference_endpoint",
                target,
                lambda: hub.scale_to_zero_inference_endpoint(
                    config.name, namespace=config.namespace
                ),
                key=f"endpoint_follows_model:idle:{last['revision']}:{last['at']}",
                cost_per_hour=0.0,
                detail={"idle_minutes": config.idle_minutes, "revision": last["revision"]},
            )
            return {"idle": True, "scaled_to_zero": True}

    return router


router = router_from_env(Config, build)
