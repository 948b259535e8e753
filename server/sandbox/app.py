"""The whole sandbox as one app: the Hub, Spaces, webhooks, discussions, Inference Endpoints
(under /v2) and the instance provider (under /cortecs/api/v1), with control routes under
/_sandbox/ and faults on demand for every route.

    sandbox = Sandbox(speed=60)          # one simulated minute per real second
    uvicorn.run(sandbox.app, port=8000)  # then HF_ENDPOINT=http://127.0.0.1:8000 and
                                         # the token sandbox.demo.token
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .clock import SimClock
from .discussions import make_discussions_router
from .endpoints import Endpoints, make_endpoints_router
from .faults import FaultMiddleware, FaultRule, Faults
from .hub import make_hub_router
from .provider import ProviderState, create_provider_app
from .spaces import Spaces, make_spaces_router
from .state import Account, HubState
from .webhooks import Deliveries, make_webhooks_router

__all__ = ["PROVIDER_PATH", "Sandbox"]

PROVIDER_PATH = "/cortecs/api/v1"
DEMO_USER = "demo"


class Sandbox:
    """A simulated Hub with a seeded demo account.

    Args:
        speed: simulated seconds per real second (delays such as a Space's build scale by it).
        demo_token: the demo account's token (generated when not given).
    """

    def __init__(self, speed: float = 1.0, *, demo_token: str | None = None) -> None:
        self.clock = SimClock(speed)
        self.state = HubState(self.clock)
        self.spaces = Spaces(self.state)
        self.endpoints = Endpoints(self.state)
        self.provider = ProviderState(self.clock)
        self.deliveries = Deliveries(self.state)
        self.faults = Faults()
        self.demo: Account = self._seed(demo_token)
        self.app = self._build()

    @property
    def base_url(self) -> str:
        return self.deliveries.base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        """Where the sandbox is served (used in the URLs it writes into payloads)."""
        self.deliveries.base_url = url.rstrip("/")

    def close(self) -> None:
        self.deliveries.close()

    def _seed(self, token: str | None) -> Account:
        state = self.state
        demo = state.add_account(DEMO_USER, token, orgs=["demo-org"])
        with state.lock:
            state.create_repo("dataset", "demo/corpus", False, DEMO_USER)
            state.create_repo("model", "demo/model", False, DEMO_USER)
            space = state.create_repo("space", "demo/trainer", False, DEMO_USER, sdk="gradio")
            for hook in state.spaces_hooks:
                hook(space, {"hardware": "cpu-basic"})
        now = self.clock.now()
        from .endpoints import _Endpoint

        spec = {
            "name": "model-endpoint",
            "type": "authenticated",
            "provider": {"vendor": "aws", "region": "us-east-1"},
            "compute": {
                "accelerator": "gpu",
                "instanceType": "nvidia-t4",
                "instanceSize": "x1",
                "scaling": {"minReplica": 0, "maxReplica": 1, "scaleToZeroTimeout": 15},
            },
            "model": {
                "repository": "demo/model",
                "framework": "pytorch",
                "revision": None,
                "task": "text-generation",
                "image": {"huggingface": {}},
            },
        }
        self.endpoints.items[(DEMO_USER, "model-endpoint")] = _Endpoint(
            DEMO_USER, spec, now - self.endpoints.ready_s, now, now
        )
        self.provider.issue_client("demo-client", demo.token)
        return demo

    def _build(self) -> FastAPI:
        app = FastAPI(
            title="spacehooks sandbox Hub", docs_url=None, redoc_url=None, openapi_url=None
        )
        app.add_middleware(FaultMiddleware, faults=self.faults)
        # More specific routers first: /api/settings/webhooks/x must not look like a repo.
        app.include_router(make_webhooks_router(self.state, self.deliveries))
        app.include_router(make_spaces_router(self.state, self.spaces))
        app.include_router(make_discussions_router(self.state))
        app.include_router(make_endpoints_router(self.state, self.endpoints))
        self._controls(app)
        app.include_router(make_hub_router(self.state))
        app.mount(PROVIDER_PATH, create_provider_app(self.provider))
        return app

    def _controls(self, app: FastAPI) -> None:
        @app.post("/_sandbox/faults", include_in_schema=False)
        async def add_fault(request: Request) -> Any:
            try:
                self.faults.add(FaultRule(**(await request.json())))
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": f"Bad fault rule: {exc}"}, status_code=422)
            return {"faults": len(self.faults.rules)}

        @app.delete("/_sandbox/faults", include_in_schema=False)
        async def clear_faults() -> Any:
            self.faults.clear()
            return {"faults": 0}

        @app.post("/_sandbox/clock/advance", include_in_schema=False)
        async def advance(seconds: float) -> Any:
            self.clock.advance(seconds)
            return {"now": self.clock.now()}

        @app.get("/_sandbox/cost", include_in_schema=False)
        async def cost() -> Any:
            return {
                "spaces_usd": round(self.spaces.total_cost(), 4),
                "instances_eur_per_hour": round(self.provider.hourly_cost(), 4),
            }

        @app.get("/_sandbox/info", include_in_schema=False)
        async def info() -> Any:
            return {
                "speed": self.clock.speed,
                "accounts": sorted(self.state.accounts),
                "repos": sorted(f"{t}:{r}" for t, r in self.state.repos),
                "provider": PROVIDER_PATH,
            }
