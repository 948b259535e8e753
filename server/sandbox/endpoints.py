"""Simulated Inference Endpoints (hub-api.md 3), served under `/v2` like the real API's base.

An endpoint is `pending` for `pending_s`, `initializing` until `ready_s`, then `running` with a
URL whose health route answers 200 (huggingface_hub's readiness rule). An endpoint on a model
repository the sandbox does not have goes `failed`. Updates pass through `updating`, and end
`updateFailed` when a failure was armed for that endpoint (`fail_next_update`, or
`POST /_sandbox/endpoints/{ns}/{name}/fail-next-update?message=...`); pause,
resume and scale-to-zero behave as on the real API (resuming a running one is a 400 that says
"already running").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .hub import Access, hub_error
from .state import HubState

__all__ = ["Endpoints", "make_endpoints_router"]


@dataclass
class _Endpoint:
    namespace: str
    spec: dict[str, Any]
    phase_started: float
    created: float
    updated: float
    held: str | None = None  # paused | scaledToZero
    updating: bool = False
    failure: str | None = None  # why the update in progress will fail


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and key != "image":
            _merge(target[key], value)
        else:
            target[key] = value


class Endpoints:
    def __init__(
        self,
        state: HubState,
        pending_s: float = 20.0,
        ready_s: float = 60.0,
        update_s: float = 30.0,
    ) -> None:
        self.state = state
        self.pending_s, self.ready_s, self.update_s = pending_s, ready_s, update_s
        self.items: dict[tuple[str, str], _Endpoint] = {}
        self.armed: dict[tuple[str, str], str] = {}  # the next update of these fails

    def fail_next_update(self, namespace: str, name: str, message: str) -> None:
        self.armed[(namespace, name)] = message

    def status(self, ep: _Endpoint) -> tuple[str, str]:
        if ep.held:
            return ep.held, f"Endpoint is {ep.held}"
        elapsed = self.state.clock.now() - ep.phase_started
        repository = ep.spec["model"]["repository"]
        if self.state.repo("model", repository) is None and elapsed >= self.pending_s:
            return "failed", f"Repository {repository} not found"
        if ep.updating:
            if elapsed < self.update_s:
                return "updating", "Applying the update"
            if ep.failure is not None:
                return "updateFailed", ep.failure
            return "running", "Endpoint is running"
        if elapsed < self.pending_s:
            return "pending", "Waiting for a machine"
        if elapsed < self.ready_s:
            return "initializing", "Loading the model"
        return "running", "Endpoint is running"

    def json(self, ep: _Endpoint, base: str) -> dict[str, Any]:
        state, message = self.status(ep)
        raw = copy.deepcopy(ep.spec)
        raw.setdefault("healthRoute", "/health")
        scaling = raw["compute"].setdefault("scaling", {})
        running = state == "running"
        raw["status"] = {
            "state": state,
            "message": message,
            "createdAt": self.state.clock.iso(ep.created),
            "updatedAt": self.state.clock.iso(ep.updated),
            "createdBy": {"id": "sandbox", "name": ep.namespace},
            "updatedBy": {"id": "sandbox", "name": ep.namespace},
            "private": None,
            "readyReplica": scaling.get("minReplica", 1) or 1 if running else 0,
            "targetReplica": scaling.get("minReplica", 1) or 1,
        }
        if running:
            raw["status"]["url"] = f"{base}/_sandbox/endpoints/{ep.namespace}/{raw['name']}"
        return raw

    def restart_phase(self, ep: _Endpoint) -> None:
        ep.phase_started = ep.updated = self.state.clock.now()


def make_endpoints_router(state: HubState, endpoints: Endpoints) -> APIRouter:
    router = APIRouter()
    access = Access(state)

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def allowed(request: Request, namespace: str) -> JSONResponse | None:
        account = access.required(request)
        if isinstance(account, JSONResponse):
            return account
        if not state.may_write(account, namespace):
            return hub_error(401, f"No access to the Inference Endpoints of {namespace}.")
        return None

    def existing(request: Request, ns: str, name: str) -> _Endpoint | JSONResponse:
        if (denied := allowed(request, ns)) is not None:
            return denied
        ep = endpoints.items.get((ns, name))
        return ep if ep is not None else hub_error(404, f"Endpoint {ns}/{name} not found")

    @router.get("/v2/endpoint/{ns}")
    async def list_endpoints(ns: str, request: Request) -> Any:
        if (denied := allowed(request, ns)) is not None:
            return denied
        return {
            "items": [
                endpoints.json(ep, base(request))
                for (owner, _), ep in endpoints.items.items()
                if owner == ns
            ]
        }

    @router.post("/v2/endpoint/{ns}")
    async def create(ns: str, request: Request) -> Any:
        if (denied := allowed(request, ns)) is not None:
            return denied
        spec = await request.json()
        for key in ("name", "compute", "model", "provider"):
            if key not in spec:
                return hub_error(400, f"Missing {key!r} in the endpoint definition.")
        if spec["model"].get("task", "x") is None:
            return hub_error(400, "model.task must be a string when given (omit it otherwise).")
        if (ns, spec["name"]) in endpoints.items:
            return hub_error(409, f"Endpoint {spec['name']} already exists.")
        now = state.clock.now()
        ep = _Endpoint(ns, spec, now, now, now)
        endpoints.items[(ns, spec["name"])] = ep
        return endpoints.json(ep, base(request))

    @router.get("/v2/endpoint/{ns}/{name}")
    async def get(ns: str, name: str, request: Request) -> Any:
        ep = existing(request, ns, name)
        return ep if isinstance(ep, JSONResponse) else endpoints.json(ep, base(request))

    @router.put("/v2/endpoint/{ns}/{name}")
    async def update(ns: str, name: str, request: Request) -> Any:
        ep = existing(request, ns, name)
        if isinstance(ep, JSONResponse):
            return ep
        _merge(ep.spec, await request.json())
        ep.held = None
        ep.updating = True
        ep.failure = endpoints.armed.pop((ns, name), None)
        endpoints.restart_phase(ep)
        return endpoints.json(ep, base(request))

    @router.delete("/v2/endpoint/{ns}/{name}")
    async def delete(ns: str, name: str, request: Request) -> Any:
        ep = existing(request, ns, name)
        if isinstance(ep, JSONResponse):
            return ep
        del endpoints.items[(ns, name)]
        return {}

    @router.post("/v2/endpoint/{ns}/{name}/{action}")
    async def act(ns: str, name: str, action: str, request: Request) -> Any:
        ep = existing(request, ns, name)
        if isinstance(ep, JSONResponse):
            return ep
        if action == "pause":
            ep.held = "paused"
        elif action == "scale-to-zero":
            ep.held = "scaledToZero"
        elif action == "resume":
            if endpoints.status(ep)[0] == "running":
                return hub_error(400, "Endpoint is already running")
            ep.held, ep.updating = None, False
            endpoints.restart_phase(ep)
        else:
            return hub_error(404, f"Unknown endpoint action {action!r}")
        ep.updated = state.clock.now()
        return endpoints.json(ep, base(request))

    @router.post("/_sandbox/endpoints/{ns}/{name}/fail-next-update")
    async def arm_failure(ns: str, name: str, message: str = "Model failed to load") -> Any:
        if (ns, name) not in endpoints.items:
            return hub_error(404, f"No endpoint {ns}/{name}")
        endpoints.fail_next_update(ns, name, message)
        return {"armed": f"{ns}/{name}", "message": message}

    @router.api_route("/_sandbox/endpoints/{ns}/{name}/{rest:path}", methods=["GET", "POST"])
    async def serve(ns: str, name: str, rest: str) -> Response:
        ep = endpoints.items.get((ns, name))
        if ep is None or endpoints.status(ep)[0] != "running":
            return JSONResponse({"error": "Endpoint not ready"}, status_code=503)
        return JSONResponse({"status": "ok", "endpoint": name, "path": rest})

    return router
