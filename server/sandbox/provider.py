"""A simulated instance provider speaking the cortecs protocol (hub-api.md, section 7).

OAuth2 client credentials, a model catalogue with per-hardware context limits, hardware types
with prices and availability, and instances whose workers step through five provisioning steps
(`init_progress` 1..5) to `running`, on simulated time. Control routes under `/_sandbox/` make
the next start fail (its workers stop at step 3), expire tokens, and inject faults.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .clock import SimClock
from .faults import FaultMiddleware, FaultRule, Faults

__all__ = ["HARDWARE", "MODELS", "ProviderState", "create_provider_app"]

STEP_SECONDS = 30.0  # simulated seconds per provisioning step
NUM_STEPS = 5
STEPS = (
    "Allocating hardware",
    "Pulling the inference image",
    "Downloading model weights",
    "Loading the model onto the GPUs",
    "Warming up",
)
BILLING_INTERVALS = ("per_minute", "per_hour")

HARDWARE: dict[str, dict[str, Any]] = {
    "NVIDIA_L4_1": {"price": 1.2, "gpu": "NVIDIA L4", "gpus": 1, "ram": 24, "available": True},
    "NVIDIA_L40S_1": {"price": 2.0, "gpu": "NVIDIA L40S", "gpus": 1, "ram": 48, "available": True},
    "NVIDIA_L40S_2": {"price": 3.9, "gpu": "NVIDIA L40S", "gpus": 2, "ram": 48, "available": True},
    "NVIDIA_H100_1": {"price": 4.5, "gpu": "NVIDIA H100", "gpus": 1, "ram": 80, "available": True},
    "NVIDIA_H100_8": {
        "price": 34.0,
        "gpu": "NVIDIA H100",
        "gpus": 8,
        "ram": 80,
        "available": False,
    },
}

MODELS: dict[str, dict[str, Any]] = {
    "cortecs--phi-4-FP8-Dynamic": {
        "screen_name": "Phi 4",
        "size": 14_700_000_000,
        "creator": "Microsoft",
        "recommended_config": "NVIDIA_L4_1",
        "max_len": {"NVIDIA_L4_1": 16000, "NVIDIA_L40S_1": 16000, "NVIDIA_L40S_2": 16000},
    },
    "neuralmagic--Meta-Llama-3.1-8B-Instruct-FP8": {
        "screen_name": "Llama 3.1 8B",
        "size": 8_000_000_000,
        "creator": "Meta",
        "recommended_config": "NVIDIA_L40S_1",
        "max_len": {
            "NVIDIA_L4_1": 16000,
            "NVIDIA_L40S_1": 64000,
            "NVIDIA_L40S_2": 128000,
            "NVIDIA_H100_1": 128000,
        },
    },
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@dataclass
class _Instance:
    instance_id: str
    args: dict[str, Any]
    created: float
    status: str = "pending"
    started_at: float | None = None
    stopped_at: float | None = None
    fail_at_step: int | None = None


@dataclass
class ProviderState:
    clock: SimClock
    clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
    token_ttl: float = 3600.0  # simulated seconds
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (simulated)
    instances: dict[str, _Instance] = field(default_factory=dict)
    fail_next_starts: int = 0
    token_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- derived state -------------------------------------------------------------------------

    def _advance(self, inst: _Instance) -> None:
        """Bring an instance's status up to the clock (transitions are derived, not scheduled)."""
        if inst.status != "pending":
            return
        now = self.clock.now()
        step = int((now - inst.created) // STEP_SECONDS) + 1
        if inst.fail_at_step is not None and step >= inst.fail_at_step:
            inst.status = "stopped"
            inst.stopped_at = inst.created + (inst.fail_at_step - 1) * STEP_SECONDS
        elif step > NUM_STEPS:
            inst.status = "running"
            inst.started_at = inst.created + NUM_STEPS * STEP_SECONDS

    def view(self, inst: _Instance) -> dict[str, Any]:
        self._advance(inst)
        workers = inst.args["num_workers"]
        if inst.status == "pending":
            step = min(NUM_STEPS, int((self.clock.now() - inst.created) // STEP_SECONDS) + 1)
            progress: dict[str, Any] | None = {
                "current_step": step,
                "num_steps": NUM_STEPS,
                "description": STEPS[step - 1],
            }
        elif inst.status == "running":
            progress = {"current_step": NUM_STEPS, "num_steps": NUM_STEPS, "description": "Ready"}
        else:
            progress = None
        return {
            "instance_id": inst.instance_id,
            "base_url": (
                f"https://{inst.instance_id}.sandbox.invalid/v1"
                if inst.status == "running"
                else None
            ),
            "instance_args": dict(inst.args),
            "instance_status": {
                "status": inst.status,
                "started_at": self.clock.iso(inst.started_at) if inst.started_at else None,
                "stopped_at": self.clock.iso(inst.stopped_at) if inst.stopped_at else None,
            },
            "worker_statuses": [{"init_progress": progress} for _ in range(workers)],
        }

    def hourly_cost(self) -> float:
        """What the running and pending instances cost per hour (for the console and tests)."""
        total = 0.0
        for inst in self.instances.values():
            self._advance(inst)
            if inst.status != "stopped":
                total += HARDWARE[inst.args["hardware_type_id"]]["price"] * inst.args["num_workers"]
        return total

    def issue_client(
        self, client_id: str | None = None, secret: str | None = None
    ) -> tuple[str, str]:
        client_id = client_id or "sandbox-" + secrets.token_hex(4)
        secret = secret or secrets.token_urlsafe(24)
        self.clients[client_id] = secret
        return client_id, secret


def _model_preview(model_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "hf_name": model_id.replace("--", "/"),
        "instant_provisioned": False,
        "creator": {"name": spec["creator"], "url": "https://example.invalid"},
        "description": f"{spec['screen_name']} (sandbox catalogue)",
        "screen_name": spec["screen_name"],
        "size": spec["size"],
        "hardware_info": {"hardware_configs": sorted(spec["max_len"])},
    }


def _hardware_type(hardware_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "hardware_type_id": hardware_id,
        "price_info": {
            "price_per_hour": spec["price"],
            "price_per_minute": round(spec["price"] / 60, 5),
            "currency": "EUR",
        },
        "hardware_info": {
            "gpu_type": spec["gpu"],
            "num_gpus": spec["gpus"],
            "gpu_ram_gb": spec["ram"],
        },
    }


def create_provider_app(state: ProviderState) -> FastAPI:
    """The provider's API as a FastAPI app (serve it at the provider's base URL)."""
    app = FastAPI(title="spacehooks sandbox: instance provider", docs_url=None, redoc_url=None)
    faults = Faults()
    app.state.faults = faults
    app.add_middleware(FaultMiddleware, faults=faults)

    def authorized(request: Request) -> JSONResponse | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = state.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= state.clock.now():
            return _error(401, "Invalid or expired access token.")
        return None

    def find(instance_id: str) -> _Instance | JSONResponse:
        inst = state.instances.get(instance_id)
        return inst if inst is not None else _error(404, f"Instance {instance_id!r} not found.")

    async def instance_in_body(request: Request) -> _Instance | JSONResponse:
        """The caller is authorised and names an existing instance in `{"instance_id"}`."""
        if (denied := authorized(request)) is not None:
            return denied
        return find((await request.json()).get("instance_id", ""))

    @app.post("/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Send the credentials as a JSON body.")
        state.token_calls += 1
        if body.get("grant_type") != "client_credentials":
            return _error(400, "grant_type must be client_credentials.")
        if state.clients.get(body.get("client_id", "")) != body.get(
            "client_secret"
        ) or not body.get("client_secret"):
            return _error(401, "Unknown client_id or wrong client_secret.")
        value = secrets.token_urlsafe(32)
        state.tokens[value] = state.clock.now() + state.token_ttl
        return JSONResponse(
            {
                "access_token": value,
                "token_type": "Bearer",
                "expires_in": state.token_ttl / state.clock.speed,
            }
        )

    @app.get("/models/")
    async def models() -> dict[str, Any]:
        return {"models": [_model_preview(m, s) for m, s in MODELS.items()]}

    @app.get("/models/{model_id}")
    async def model(model_id: str) -> Any:
        spec = MODELS.get(model_id)
        if spec is None:
            return _error(404, f"Model {model_id!r} not found.")
        return {
            "model": {
                **_model_preview(model_id, spec),
                "recommended_config": spec["recommended_config"],
                "hardware_configs": {
                    hw: {"params": {"--max-model-len": n}} for hw, n in spec["max_len"].items()
                },
            }
        }

    @app.get("/hardware-types/")
    async def hardware_types() -> dict[str, Any]:
        return {"hardware_types": [_hardware_type(h, s) for h, s in HARDWARE.items()]}

    @app.get("/hardware-types/available")
    async def available_hardware() -> dict[str, Any]:
        return {
            "hardware_types": [_hardware_type(h, s) for h, s in HARDWARE.items() if s["available"]]
        }

    @app.post("/instances/start")
    async def start(request: Request) -> Any:
        if (denied := authorized(request)) is not None:
            return denied
        body = await request.json()
        spec = MODELS.get(body.get("model_id", ""))
        if spec is None:
            return _error(404, f"Model {body.get('model_id')!r} not found.")
        hardware = body.get("hardware_type_id") or spec["recommended_config"]
        if hardware not in spec["max_len"]:
            return _error(400, f"Hardware {hardware!r} cannot run {body['model_id']!r}.")
        if not HARDWARE[hardware]["available"]:
            return _error(409, f"Hardware {hardware!r} is not available right now.")
        args = {
            "model_id": body["model_id"],
            "hardware_type_id": hardware,
            "context_length": body.get("context_length") or min(spec["max_len"][hardware], 32000),
            "billing_interval": body.get("billing_interval") or "per_minute",
            "num_workers": body.get("num_workers") or 1,
        }
        with state.lock:
            fail = state.fail_next_starts > 0
            state.fail_next_starts -= 1 if fail else 0
        inst = _Instance(
            "inst-" + uuid.uuid4().hex[:12],
            args,
            state.clock.now(),
            fail_at_step=3 if fail else None,
        )
        state.instances[inst.instance_id] = inst
        return {"instance": state.view(inst)}

    @app.post("/instances/restart")
    async def restart(request: Request) -> Any:
        inst = await instance_in_body(request)
        if isinstance(inst, JSONResponse):
            return inst
        state._advance(inst)
        if inst.status != "stopped":
            return _error(400, f"Instance {inst.instance_id!r} is {inst.status}, not stopped.")
        inst.status, inst.created, inst.started_at, inst.stopped_at = (
            "pending",
            state.clock.now(),
            None,
            None,
        )
        inst.fail_at_step = None
        return {"instance": state.view(inst)}

    @app.post("/instances/stop")
    async def stop(request: Request) -> Any:
        inst = await instance_in_body(request)
        if isinstance(inst, JSONResponse):
            return inst
        state._advance(inst)
        if inst.status != "stopped":
            inst.status, inst.stopped_at = "stopped", state.clock.now()
        return {"instance": state.view(inst)}

    @app.post("/instances/stop-all")
    async def stop_all(request: Request) -> Any:
        if (denied := authorized(request)) is not None:
            return denied
        stopped = []
        for inst in state.instances.values():
            state._advance(inst)
            if inst.status != "stopped":
                inst.status, inst.stopped_at = "stopped", state.clock.now()
                stopped.append(inst.instance_id)
        return {"instance_ids": stopped}

    @app.get("/instances/")
    async def list_instances(request: Request) -> Any:
        if (denied := authorized(request)) is not None:
            return denied
        return {"instances": [state.view(i) for i in state.instances.values()]}

    @app.get("/instances/{instance_id}")
    async def get_instance(instance_id: str, request: Request) -> Any:
        if (denied := authorized(request)) is not None:
            return denied
        inst = find(instance_id)
        return inst if isinstance(inst, JSONResponse) else {"instance": state.view(inst)}

    @app.delete("/instances/delete-all")
    async def delete_all(request: Request, force_deletion: str = "False") -> Any:
        if (denied := authorized(request)) is not None:
            return denied
        force = force_deletion.lower() == "true"
        gone = []
        for inst in list(state.instances.values()):
            state._advance(inst)
            if force or inst.status == "stopped":
                del state.instances[inst.instance_id]
                gone.append(inst.instance_id)
        return {"instance_ids": gone}

    @app.delete("/instances/{instance_id}")
    async def delete(instance_id: str, request: Request) -> Any:
        if (denied := authorized(request)) is not None:
            return denied
        inst = find(instance_id)
        if isinstance(inst, JSONResponse):
            return inst
        state._advance(inst)
        if inst.status != "stopped":
            return _error(400, f"Instance {instance_id!r} is {inst.status}: stop it first.")
        del state.instances[instance_id]
        return {"instance_id": instance_id}

    # -- sandbox controls ----------------------------------------------------------------------

    @app.post("/_sandbox/fail-next-start")
    async def fail_next_start(times: int = 1) -> dict[str, int]:
        state.fail_next_starts += times
        return {"fail_next_starts": state.fail_next_starts}

    @app.post("/_sandbox/expire-tokens")
    async def expire_tokens() -> dict[str, int]:
        count = len(state.tokens)
        state.tokens.clear()
        return {"expired": count}

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request) -> Any:
        try:
            faults.add(FaultRule(**(await request.json())))
        except (TypeError, ValueError) as exc:
            return _error(422, f"Bad fault rule: {exc}")
        return {"faults": len(faults.rules)}

    @app.get("/_sandbox/cost")
    async def cost() -> dict[str, Any]:
        return {"hourly_cost": round(state.hourly_cost(), 4), "currency": "EUR"}

    return app
