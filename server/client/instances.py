"""`InstancesClient`: dedicated LLM instances from a cortecs-compatible provider.

Shares the Hub client's HTTP layer (session, retries, error tree). Beyond the reference client:
arguments are validated before anything is started (naming the allowed values), every start,
restart and scale is priced first and refused above a ceiling, and `scale` changes the number
of workers without a capacity gap (the new instance runs before the old one stops).

    HubError
     +-- InstancesError
          +-- MissingCredentials     no client id/secret when an authenticated call is made
          +-- InvalidInstanceArgs    an argument the provider would refuse (names allowed values)
          +-- CostCeilingExceeded    the hourly cost is above SPACEHOOKS_MAX_HOURLY_COST
          +-- InstanceStopped        the instance stopped while we waited for it
          +-- InstanceTimeout        it was not running within the wait's timeout
          +-- ScaleFailed            the new instance failed; the old one still runs
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .http import HttpClient, HubError, Progress, RetryConfig, Unauthorized

__all__ = [
    "BILLING_INTERVALS",
    "CostCeilingExceeded",
    "HardwareType",
    "Instance",
    "InstanceArgs",
    "InstanceStatus",
    "InstanceStopped",
    "InstanceTimeout",
    "InstancesClient",
    "InstancesError",
    "InvalidInstanceArgs",
    "MissingCredentials",
    "ModelPreview",
    "ScaleFailed",
    "WorkerStatus",
    "hf_name_of",
    "model_id_of",
]

DEFAULT_BASE_URL = "https://cortecs.ai/api/v1"
BILLING_INTERVALS = ("per_minute", "per_hour")
MAX_WORKERS = 8


def model_id_of(hf_name: str) -> str:
    """`org/model` -> the provider's `org--model` (an id passes through unchanged)."""
    return hf_name.replace("/", "--")


def hf_name_of(model_id: str) -> str:
    """The provider's `org--model` -> `org/model` (lossy if a name itself holds '--')."""
    return model_id.replace("--", "/")


def _check_workers(num_workers: int) -> None:
    if not 1 <= num_workers <= MAX_WORKERS:
        raise InvalidInstanceArgs(
            f"num_workers={num_workers!r} is out of range: use 1 to {MAX_WORKERS}."
        )


class InstancesError(HubError):
    pass


class MissingCredentials(InstancesError):
    pass


class InvalidInstanceArgs(InstancesError, ValueError):
    pass


class CostCeilingExceeded(InstancesError):
    def __init__(self, message: str, cost: float, ceiling: float) -> None:
        super().__init__(message)
        self.cost, self.ceiling = cost, ceiling


class InstanceStopped(InstancesError):
    pass


class InstanceTimeout(InstancesError, TimeoutError):
    pass


class ScaleFailed(InstancesError):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class InitProgress(_Model):
    current_step: int
    num_steps: int
    description: str = ""


class WorkerStatus(_Model):
    init_progress: InitProgress | None = None


class InstanceArgs(_Model):
    model_id: str | None = None
    hardware_type_id: str | None = None
    context_length: int | None = None
    billing_interval: str | None = None
    num_workers: int | None = None

    def key(self) -> tuple[Any, ...]:
        return (
            self.model_id,
            self.hardware_type_id,
            self.context_length,
            self.billing_interval,
            self.num_workers,
        )


class InstanceStatus(_Model):
    status: str
    started_at: datetime | None = None
    stopped_at: datetime | None = None


class Instance(_Model):
    instance_id: str
    base_url: str | None = None
    instance_args: InstanceArgs
    instance_status: InstanceStatus
    worker_statuses: list[WorkerStatus] = Field(default_factory=list)

    @property
    def status(self) -> str:
        return self.instance_status.status

    @property
    def progress(self) -> InitProgress | None:
        return next((w.init_progress for w in self.worker_statuses if w.init_progress), None)


class ModelPreview(_Model):
    model_id: str
    hf_name: str | None = None
    instant_provisioned: bool = False
    creator: dict[str, str] | None = None
    description: str | None = None
    screen_name: str | None = None
    size: int | None = None
    hardware_configs: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_raw(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if data.get("model_name"):
                data["model_id"] = data["model_name"]
            info = data.get("hardware_info") or {}
            if "hardware_configs" in info and not isinstance(data.get("hardware_configs"), list):
                data["hardware_configs"] = info["hardware_configs"]
        return data


class HardwareType(_Model):
    hardware_type_id: str
    price_info: dict[str, Any] = Field(default_factory=dict)
    hardware_info: dict[str, Any] = Field(default_factory=dict)

    @property
    def price_per_hour(self) -> float | None:
        price = self.price_info.get("price_per_hour")
        return float(price) if price is not None else None

    @property
    def currency(self) -> str:
        return str(self.price_info.get("currency", ""))


class InstancesClient:
    """A client of the instance provider.

    Args:
        client_id, client_secret: OAuth2 client credentials; default `CORTECS_CLIENT_ID` and
            `CORTECS_CLIENT_SECRET`. Needed only for calls about instances (the catalogue is
            public), and checked only then.
        base_url: default `CORTECS_API_BASE_URL`, else the provider's public API.
        max_hourly_cost: refuse starts, restarts and scales above this hourly cost (in the
            provider's currency); default `SPACEHOOKS_MAX_HOURLY_COST`, else no ceiling.
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        base_url: str | None = None,
        max_hourly_cost: float | None = None,
        session: requests.Session | None = None,
        retry: RetryConfig | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._client_id = client_id or env.get("CORTECS_CLIENT_ID") or None
        self._client_secret = client_secret or env.get("CORTECS_CLIENT_SECRET") or None
        base = base_url or env.get("CORTECS_API_BASE_URL") or DEFAULT_BASE_URL
        self._http = HttpClient(base, session=session, retry=retry, timeout=50.0)
        if max_hourly_cost is None and env.get("SPACEHOOKS_MAX_HOURLY_COST"):
            max_hourly_cost = float(env["SPACEHOOKS_MAX_HOURLY_COST"])
        self.max_hourly_cost = max_hourly_cost
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self._models: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return (
            f"InstancesClient({self._http.base_url!r}, client_id={self._client_id!r}, "
            f"max_hourly_cost={self.max_hourly_cost})"
        )

    # -- auth ----------------------------------------------------------------------------------

    def _fetch_token(self) -> None:
        if not self._client_id or not self._client_secret:
            raise MissingCredentials(
                "The instance provider needs client credentials: set CORTECS_CLIENT_ID and "
                "CORTECS_CLIENT_SECRET (or pass client_id= and client_secret=)."
            )
        answer = self._http.request(
            "POST",
            "/oauth2/token",
            auth=False,
            idempotent=True,
            json={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
        ).json()
        self._http.set_token(answer["access_token"])
        self._token_expires = time.monotonic() + float(answer.get("expires_in", 0))

    def _authed(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._token_lock:
            if time.monotonic() >= self._token_expires:
                self._fetch_token()
        try:
            return self._http.request(method, path, **kwargs).json()
        except Unauthorized:
            with self._token_lock:  # revoked or expired early: one fresh token, one more try
                self._fetch_token()
            return self._http.request(method, path, **kwargs).json()

    # -- catalogue (public) --------------------------------------------------------------------

    def get_all_models(self) -> list[ModelPreview]:
        data = self._http.request("GET", "/models/", auth=False).json()
        return [ModelPreview.model_validate(m) for m in data.get("models", [])]

    def _model(self, model_id: str) -> dict[str, Any]:
        if model_id not in self._models:
            data = self._http.request("GET", f"/models/{model_id}", auth=False).json()
            self._models[model_id] = data["model"]
        return self._models[model_id]

    def get_all_hardware_types(self) -> list[HardwareType]:
        data = self._http.request("GET", "/hardware-types/", auth=False).json()
        return [HardwareType.model_validate(h) for h in data.get("hardware_types", [])]

    def get_available_hardware_types(self) -> list[HardwareType]:
        data = self._http.request("GET", "/hardware-types/available", auth=False).json()
        return [HardwareType.model_validate(h) for h in data.get("hardware_types", [])]

    # -- validation and cost -------------------------------------------------------------------

    def resolve_args(
        self,
        model_id: str,
        hardware_type_id: str | None = None,
        context_length: int | None = None,
        billing_interval: str | None = None,
        num_workers: int | None = None,
    ) -> InstanceArgs:
        """Validate the arguments and fill the provider's defaults (as the provider would)."""
        model_id = model_id_of(model_id)
        if num_workers is not None:
            _check_workers(num_workers)
        if billing_interval is not None and billing_interval not in BILLING_INTERVALS:
            raise InvalidInstanceArgs(
                f"billing_interval={billing_interval!r} is unknown: use one of "
                f"{', '.join(BILLING_INTERVALS)}."
            )
        model = self._model(model_id)
        configs = model.get("hardware_configs") or {}
        hardware = hardware_type_id or model.get("recommended_config")
        if hardware not in configs:
            raise InvalidInstanceArgs(
                f"hardware_type_id={hardware!r} cannot run {model_id}: use one of "
                f"{', '.join(sorted(configs))}."
            )
        max_len = int(configs[hardware].get("params", {}).get("--max-model-len", 0)) or None
        if context_length is not None and max_len is not None and context_length > max_len:
            raise InvalidInstanceArgs(
                f"context_length={context_length} is above {model_id}'s maximum of {max_len} "
                f"on {hardware}."
            )
        if context_length is None and max_len is not None:
            context_length = min(max_len, 32000)
        return InstanceArgs(
            model_id=model_id,
            hardware_type_id=hardware,
            context_length=context_length,
            billing_interval=billing_interval or "per_minute",
            num_workers=num_workers or 1,
        )

    def hourly_cost(self, args: InstanceArgs) -> tuple[float, str]:
        """(cost per hour, currency): the hardware type's price times the number of workers."""
        hardware = {h.hardware_type_id: h for h in self.get_all_hardware_types()}
        kind = hardware.get(args.hardware_type_id or "")
        if kind is None or kind.price_per_hour is None:
            raise InvalidInstanceArgs(f"No price is known for {args.hardware_type_id!r}.")
        return kind.price_per_hour * (args.num_workers or 1), kind.currency

    def check_cost(self, args: InstanceArgs, action: str) -> float:
        """Refuse (before any request that costs money) when above the ceiling."""
        cost, currency = self.hourly_cost(args)
        if self.max_hourly_cost is not None and cost > self.max_hourly_cost:
            raise CostCeilingExceeded(
                f"Refusing to {action} {args.num_workers} x {args.hardware_type_id} for "
                f"{args.model_id}: {cost:.2f} {currency}/hour is above "
                f"SPACEHOOKS_MAX_HOURLY_COST={self.max_hourly_cost:.2f}.",
                cost,
                self.max_hourly_cost,
            )
        return cost

    # -- instances -----------------------------------------------------------------------------

    def start(
        self,
        model_id: str,
        hardware_type_id: str | None = None,
        context_length: int | None = None,
        billing_interval: str | None = None,
        num_workers: int | None = None,
    ) -> Instance:
        """Start a new instance (validated and priced first). Returns it while pending."""
        args = self.resolve_args(
            model_id, hardware_type_id, context_length, billing_interval, num_workers
        )
        self.check_cost(args, "start")
        # The defaulted arguments are sent (not the caller's nulls), so that later matching in
        # ensure_instance does not depend on the provider's defaults agreeing with ours.
        data = self._authed(
            "POST",
            "/instances/start",
            json=args.model_dump(exclude_none=False, include=set(InstanceArgs.model_fields)),
        )
        return Instance.model_validate(data["instance"])

    def restart(self, instance_id: str) -> Instance:
        current = self.get_instance(instance_id)
        self.check_cost(current.instance_args, "restart")
        data = self._authed("POST", "/instances/restart", json={"instance_id": instance_id})
        return Instance.model_validate(data["instance"])

    def stop(self, instance_id: str) -> Instance:
        data = self._authed(
            "POST", "/instances/stop", json={"instance_id": instance_id}, idempotent=True
        )
        return Instance.model_validate(data["instance"])

    def stop_all(self) -> list[str]:
        return list(
            self._authed("POST", "/instances/stop-all", idempotent=True).get("instance_ids", [])
        )

    def delete(self, instance_id: str) -> str:
        return str(self._authed("DELETE", f"/instances/{instance_id}")["instance_id"])

    def delete_all(self, force: bool = False) -> list[str]:
        # The provider reads the flag as Python's bool text.
        data = self._authed(
            "DELETE", "/instances/delete-all", params={"force_deletion": str(bool(force))}
        )
        return list(data.get("instance_ids", []))

    def get_instance(self, instance_id: str) -> Instance:
        return Instance.model_validate(self._authed("GET", f"/instances/{instance_id}")["instance"])

    def get_instance_status(self, instance_id: str) -> InstanceStatus:
        return self.get_instance(instance_id).instance_status

    def get_worker_statuses(self, instance_id: str) -> list[WorkerStatus]:
        return self.get_instance(instance_id).worker_statuses

    def get_all_instances(self) -> list[Instance]:
        return [Instance.model_validate(i) for i in self._authed("GET", "/instances/")["instances"]]

    def get_running_instances(self) -> list[Instance]:
        return [i for i in self.get_all_instances() if i.status == "running"]

    def poll_instance(
        self,
        instance_id: str,
        timeout: float = 750.0,
        poll_interval: float = 5.0,
        progress: Progress | None = None,
    ) -> Instance:
        """Wait until the instance runs, showing its provisioning step; raise if it stops."""
        progress = progress or Progress(f"Starting instance {instance_id}")
        deadline = time.monotonic() + timeout
        while True:
            instance = self.get_instance(instance_id)
            step = instance.progress
            # Done at `running`, not at the last provisioning step (the reference client's
            # rule): an instance still pending at step 5 of 5 cannot serve requests yet.
            if instance.status == "running":
                progress.close("running")
                return instance
            if instance.status == "stopped":
                raise InstanceStopped(f"Instance {instance_id} stopped while starting.")
            progress.update(
                f"step {step.current_step} of {step.num_steps}: {step.description}"
                if step
                else instance.status
            )
            if time.monotonic() >= deadline:
                where = f"step {step.current_step} of {step.num_steps}" if step else instance.status
                raise InstanceTimeout(
                    f"Instance {instance_id} not running after {timeout:g} s (at {where})."
                )
            time.sleep(poll_interval)

    def ensure_instance(
        self,
        model_id: str,
        hardware_type_id: str | None = None,
        context_length: int | None = None,
        billing_interval: str | None = None,
        num_workers: int | None = None,
        *,
        wait: bool = True,
        timeout: float = 750.0,
        poll_interval: float = 5.0,
    ) -> Instance:
        """An instance with exactly these arguments: reuse a running or pending one, restart a
        stopped one, else start one; then (with `wait`) wait until it runs."""
        args = self.resolve_args(
            model_id, hardware_type_id, context_length, billing_interval, num_workers
        )
        running = pending = stopped = None
        for instance in self.get_all_instances():
            if instance.instance_args.key() != args.key():
                continue
            if instance.status == "running":
                running = instance
                break
            if instance.status == "pending":
                pending = instance
            elif instance.status == "stopped":
                stopped = instance
        if running is not None:
            return running
        if pending is not None:
            chosen = pending
        elif stopped is not None:
            chosen = self.restart(stopped.instance_id)
        else:
            chosen = self.start(**args.model_dump(include=set(InstanceArgs.model_fields)))
        if not wait:
            return chosen
        return self.poll_instance(chosen.instance_id, timeout, poll_interval)

    def scale(
        self,
        instance_id: str,
        num_workers: int,
        *,
        timeout: float = 750.0,
        poll_interval: float = 5.0,
    ) -> Instance:
        """Change the number of workers without a capacity gap.

        A new instance with the new count is started and waited for; only once it runs is the
        old one stopped. If the new one fails, it is stopped and the old one keeps running.
        """
        _check_workers(num_workers)
        old = self.get_instance(instance_id)
        if old.instance_args.num_workers == num_workers and old.status == "running":
            return old
        args = old.instance_args.model_copy(update={"num_workers": num_workers})
        self.check_cost(args, "scale to")
        new = self.start(**args.model_dump(include=set(InstanceArgs.model_fields)))
        try:
            running = self.poll_instance(new.instance_id, timeout, poll_interval)
        except InstancesError as exc:
            with contextlib.suppress(HubError):  # best effort: the real error is below
                self.stop(new.instance_id)
            raise ScaleFailed(
                f"Scaling {instance_id} to {num_workers} workers failed: the new instance "
                f"{new.instance_id} did not start ({exc}). The old instance {instance_id} keeps "
                "running."
            ) from exc
        if old.status != "stopped":
            self.stop(instance_id)
        return running
