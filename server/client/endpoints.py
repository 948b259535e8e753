"""Inference Endpoints: the API calls (a `HubClient` mixin) and the `InferenceEndpoint` object.

Readiness follows huggingface_hub's rule: state `running` *and* a URL *and* the health route
answering 200; `failed`/`updateFailed` end the wait with an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from .http import BadRequest, HttpClient, HubError, Progress, Unauthorized
from .models import parse_datetime

if TYPE_CHECKING:
    from .hub import HubClient

__all__ = [
    "EndpointsMixin",
    "InferenceEndpoint",
    "InferenceEndpointError",
    "InferenceEndpointStatus",
    "InferenceEndpointTimeoutError",
]


class InferenceEndpointStatus(str, Enum):
    PENDING = "pending"
    INITIALIZING = "initializing"
    UPDATING = "updating"
    UPDATE_FAILED = "updateFailed"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    SCALED_TO_ZERO = "scaledToZero"


class InferenceEndpointError(HubError):
    """The endpoint failed to deploy or to update."""


class InferenceEndpointTimeoutError(InferenceEndpointError, TimeoutError):
    """The endpoint was not ready within the wait's timeout."""


@dataclass
class InferenceEndpoint:
    """One endpoint, as last fetched; methods act on it through the client that fetched it."""

    name: str
    namespace: str
    status: str
    url: str | None
    repository: str
    revision: str | None
    framework: str | None
    task: str | None
    type: str | None
    health_route: str
    created_at: datetime | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(repr=False)
    _client: HubClient | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_raw(
        cls, raw: dict[str, Any], namespace: str, client: HubClient | None = None
    ) -> InferenceEndpoint:
        status = raw.get("status") or {}
        model = raw.get("model") or {}
        return cls(
            name=raw["name"],
            namespace=namespace,
            status=status.get("state", ""),
            url=status.get("url"),
            repository=model.get("repository", ""),
            revision=model.get("revision"),
            framework=model.get("framework"),
            task=model.get("task"),
            type=raw.get("type"),
            health_route=raw.get("healthRoute") or "/health",
            created_at=parse_datetime(status.get("createdAt")),
            updated_at=parse_datetime(status.get("updatedAt")),
            raw=raw,
            _client=client,
        )

    @property
    def client(self) -> HubClient:
        if self._client is None:
            raise RuntimeError("This InferenceEndpoint was built without a client.")
        return self._client

    def _refresh(self, other: InferenceEndpoint) -> InferenceEndpoint:
        self.__dict__.update({k: v for k, v in other.__dict__.items() if k != "_client"})
        return self

    def fetch(self) -> InferenceEndpoint:
        return self._refresh(
            self.client.get_inference_endpoint(self.name, namespace=self.namespace)
        )

    def _healthy(self) -> bool:
        if not self.url:
            return False
        try:
            self.client._http.request("GET", self.url.rstrip("/") + self.health_route)
        except HubError:
            return False
        return True

    def wait(self, timeout: float | None = None, fetch_every: float = 5.0) -> InferenceEndpoint:
        """Wait until running with a URL whose health route answers 200."""
        progress = Progress(f"Waiting for endpoint {self.namespace}/{self.name}")
        started = time.monotonic()
        while True:
            progress.update(self.status)
            if self.status == InferenceEndpointStatus.FAILED:
                raise InferenceEndpointError(
                    f"Inference Endpoint {self.name!r} failed to deploy: {self._message()}"
                )
            if self.status == InferenceEndpointStatus.UPDATE_FAILED:
                raise InferenceEndpointError(
                    f"Inference Endpoint {self.name!r} failed to update: {self._message()}"
                )
            if self.status == InferenceEndpointStatus.RUNNING and self._healthy():
                progress.close(f"running at {self.url}")
                return self
            if timeout is not None and time.monotonic() - started > timeout:
                raise InferenceEndpointTimeoutError(
                    f"Inference Endpoint {self.name!r} not ready after {timeout:g} s "
                    f"(last status {self.status!r})."
                )
            time.sleep(fetch_every)
            self.fetch()

    def _message(self) -> str:
        return str((self.raw.get("status") or {}).get("message") or "no message")

    def pause(self) -> InferenceEndpoint:
        return self._refresh(
            self.client.pause_inference_endpoint(self.name, namespace=self.namespace)
        )

    def resume(self, running_ok: bool = True) -> InferenceEndpoint:
        return self._refresh(
            self.client.resume_inference_endpoint(
                self.name, namespace=self.namespace, running_ok=running_ok
            )
        )

    def scale_to_zero(self) -> InferenceEndpoint:
        return self._refresh(
            self.client.scale_to_zero_inference_endpoint(self.name, namespace=self.namespace)
        )

    def update(self, **changes: Any) -> InferenceEndpoint:
        return self._refresh(
            self.client.update_inference_endpoint(self.name, namespace=self.namespace, **changes)
        )

    def delete(self) -> None:
        self.client.delete_inference_endpoint(self.name, namespace=self.namespace)


def _custom_image(image: dict[str, Any]) -> dict[str, Any]:
    # A flat dict with a url is a custom container (huggingface_hub's convention).
    return {"custom": image} if "url" in image else image


class EndpointsMixin:
    """The Inference Endpoints API on `HubClient` (`self._ie`, the IE base URL)."""

    _ie: HttpClient

    def _endpoint(
        self: Any, method: str, path: str, namespace: str, **kw: Any
    ) -> InferenceEndpoint:
        raw = self._ie.request(method, path, **kw).json()
        return InferenceEndpoint.from_raw(raw, namespace, self)

    def get_inference_endpoint(
        self: Any, name: str, *, namespace: str | None = None
    ) -> InferenceEndpoint:
        ns = self._namespace(namespace)
        return self._endpoint("GET", f"/endpoint/{ns}/{name}", ns)

    def list_inference_endpoints(
        self: Any, namespace: str | None = None
    ) -> list[InferenceEndpoint]:
        """The endpoints of a namespace; `"*"` for yours and every org's you can see."""
        if namespace == "*":
            found = self.list_inference_endpoints(None)
            for org in self.whoami().get("orgs", []):
                try:
                    found += self.list_inference_endpoints(org["name"])
                except Unauthorized:
                    continue  # no billing or no access on that org
            return list(found)
        ns = self._namespace(namespace)
        items = self._ie.request("GET", f"/endpoint/{ns}").json()["items"]
        return [InferenceEndpoint.from_raw(item, ns, self) for item in items]

    def create_inference_endpoint(
        self: Any,
        name: str,
        *,
        repository: str,
        framework: str,
        accelerator: str,
        instance_size: str,
        instance_type: str,
        region: str,
        vendor: str,
        min_replica: int = 1,
        max_replica: int = 1,
        scale_to_zero_timeout: int | None = None,
        revision: str | None = None,
        task: str | None = None,
        custom_image: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        type: str = "authenticated",
        namespace: str | None = None,
        tags: list[str] | None = None,
    ) -> InferenceEndpoint:
        ns = self._namespace(namespace)
        model: dict[str, Any] = {
            "framework": framework,
            "repository": repository,
            "revision": revision,
            "image": _custom_image(custom_image) if custom_image else {"huggingface": {}},
        }
        if task is not None:
            model["task"] = task  # the server rejects an explicit null
        if env:
            model["env"] = env
        if secrets:
            model["secrets"] = secrets
        body: dict[str, Any] = {
            "compute": {
                "accelerator": accelerator,
                "instanceSize": instance_size,
                "instanceType": instance_type,
                "scaling": {
                    "maxReplica": max_replica,
                    "minReplica": min_replica,
                    "scaleToZeroTimeout": scale_to_zero_timeout,
                },
            },
            "model": model,
            "name": name,
            "provider": {"region": region, "vendor": vendor},
            "type": type,
        }
        if tags is not None:
            body["tags"] = tags
        return self._endpoint("POST", f"/endpoint/{ns}", ns, json=body)

    def update_inference_endpoint(
        self: Any,
        name: str,
        *,
        accelerator: str | None = None,
        instance_size: str | None = None,
        instance_type: str | None = None,
        min_replica: int | None = None,
        max_replica: int | None = None,
        scale_to_zero_timeout: int | None = None,
        repository: str | None = None,
        framework: str | None = None,
        revision: str | None = None,
        task: str | None = None,
        custom_image: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        namespace: str | None = None,
    ) -> InferenceEndpoint:
        """Change only what is given (the API takes a partial tree)."""
        ns = self._namespace(namespace)
        compute: dict[str, Any] = {}
        scaling: dict[str, Any] = {}
        model: dict[str, Any] = {}
        for target, key, value in (
            (compute, "accelerator", accelerator),
            (compute, "instanceSize", instance_size),
            (compute, "instanceType", instance_type),
            (scaling, "maxReplica", max_replica),
            (scaling, "minReplica", min_replica),
            (scaling, "scaleToZeroTimeout", scale_to_zero_timeout),
            (model, "repository", repository),
            (model, "framework", framework),
            (model, "revision", revision),
            (model, "task", task),
            (model, "image", _custom_image(custom_image) if custom_image else None),
            (model, "env", env),
            (model, "secrets", secrets),
        ):
            if value is not None:
                target[key] = value
        if scaling:
            compute["scaling"] = scaling
        body = {k: v for k, v in (("compute", compute), ("model", model)) if v}
        return self._endpoint("PUT", f"/endpoint/{ns}/{name}", ns, json=body)

    def pause_inference_endpoint(
        self: Any, name: str, *, namespace: str | None = None
    ) -> InferenceEndpoint:
        ns = self._namespace(namespace)
        return self._endpoint("POST", f"/endpoint/{ns}/{name}/pause", ns, idempotent=True)

    def resume_inference_endpoint(
        self: Any, name: str, *, namespace: str | None = None, running_ok: bool = True
    ) -> InferenceEndpoint:
        ns = self._namespace(namespace)
        try:
            return self._endpoint("POST", f"/endpoint/{ns}/{name}/resume", ns, idempotent=True)
        except BadRequest as exc:
            if running_ok and "already running" in (exc.server_message or ""):
                return self.get_inference_endpoint(name, namespace=ns)
            raise

    def scale_to_zero_inference_endpoint(
        self: Any, name: str, *, namespace: str | None = None
    ) -> InferenceEndpoint:
        ns = self._namespace(namespace)
        return self._endpoint("POST", f"/endpoint/{ns}/{name}/scale-to-zero", ns, idempotent=True)

    def delete_inference_endpoint(self: Any, name: str, *, namespace: str | None = None) -> None:
        ns = self._namespace(namespace)
        self._ie.request("DELETE", f"/endpoint/{ns}/{name}")
