"""`HubClient`: the Hub over `requests`, with huggingface_hub's method names and parameters.

Code moves both ways: `HfApi(...).request_space_hardware(repo_id, "t4-small")` and
`HubClient(...).request_space_hardware(repo_id, "t4-small")` send the same request (a test
checks it against huggingface_hub itself). Inference Endpoints live in `endpoints.py`, commits
and uploads in `commits.py`; `HubClient` brings them together.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from .commits import CommitsMixin
from .endpoints import EndpointsMixin
from .http import (
    Conflict,
    Forbidden,
    HttpClient,
    HubError,
    Progress,
    RepoNotFound,
    RetryConfig,
    Unauthorized,
)
from .models import (
    ERROR_STAGES,
    DiscussionComment,
    DiscussionWithDetails,
    RepoUrl,
    SpaceRuntime,
    SpaceVariable,
    WebhookInfo,
    WebhookWatchedItem,
)

__all__ = ["DEFAULT_ENDPOINT", "HubClient", "SpaceWaitError", "resolve_token"]

DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_TYPES = ("model", "dataset", "space")
WEBHOOK_DOMAINS = ["repo", "discussion"]


class SpaceWaitError(HubError):
    """A Space did not reach the wanted stage: it failed, or the wait timed out."""

    def __init__(self, message: str, runtime: SpaceRuntime | None) -> None:
        super().__init__(message)
        self.runtime = runtime


def resolve_token(token: str | bool | None, env: Mapping[str, str] | None = None) -> str | None:
    """The token to send: the argument, else HF_TOKEN, else huggingface_hub's token file.

    `False` sends none. The file is `$HF_HOME/token` (HF_HOME defaults to
    `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`).
    """
    if token is False:
        return None
    if isinstance(token, str) and token.strip():
        return token.strip()
    env = os.environ if env is None else env
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = env.get(name, "").replace("\r", "").replace("\n", "").strip()
        if value:
            return value
    home = env.get("HF_HOME") or str(
        Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    )
    path = Path(env.get("HF_TOKEN_PATH") or Path(home) / "token")
    try:
        value = path.read_text().replace("\r", "").replace("\n", "").strip()
    except OSError:
        return None
    return value or None


def _repo_path(repo_type: str | None) -> str:
    repo_type = repo_type or "model"
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}.")
    return f"{repo_type}s"


def _split_repo_id(repo_id: str) -> tuple[str | None, str]:
    if repo_id.count("/") > 1 or not repo_id.strip("/"):
        raise ValueError(f"Invalid repo id {repo_id!r}: expected 'namespace/name' or 'name'.")
    namespace, _, name = repo_id.rpartition("/")
    return namespace or None, name


class HubClient(EndpointsMixin, CommitsMixin):
    """The Hugging Face Hub's HTTP API: Spaces, Inference Endpoints, webhooks, repos, commits.

    Args:
        endpoint: the Hub's base URL; default `HF_ENDPOINT`, else https://huggingface.co.
        token: a token; default `HF_TOKEN`, else huggingface_hub's token file; False for none.
        endpoints_url: the Inference Endpoints API. Default: the public one for the public
            Hub; `<endpoint>/v2` for any other Hub (the sandbox serves it there).
        session: the `requests.Session` to use (the one I/O seam; tests point it anywhere).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | bool | None = None,
        *,
        endpoints_url: str | None = None,
        session: requests.Session | None = None,
        retry: RetryConfig | None = None,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.endpoint = (endpoint or env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        resolved = resolve_token(token, env)
        self._http = HttpClient(
            self.endpoint, token=resolved, session=session, retry=retry, timeout=timeout
        )
        official = self.endpoint == DEFAULT_ENDPOINT
        default_ie = (
            "https://api.endpoints.huggingface.cloud/v2" if official else self.endpoint + "/v2"
        )
        self._ie = HttpClient(
            endpoints_url or default_ie,
            token=resolved,
            session=self._http.session,
            retry=retry,
            timeout=timeout,
        )
        self._whoami: dict[str, Any] | None = None
        self._whoami_lock = threading.Lock()

    def __repr__(self) -> str:
        token = "***" if self.has_token else None
        return f"HubClient(endpoint={self.endpoint!r}, token={token})"

    @property
    def has_token(self) -> bool:
        return self._http._token is not None

    @property
    def token(self) -> str | None:
        """The token in use (for handing to a Space as its secret; never printed by reprs)."""
        return self._http._token

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        return response.json() if response.content else None

    # -- identity ------------------------------------------------------------------------------

    def whoami(self, *, cache: bool = True) -> dict[str, Any]:
        """Who the token belongs to. Cached: the Hub rate-limits this call strictly."""
        with self._whoami_lock:
            if self._whoami is None or not cache:
                self._whoami = self._json("GET", "/api/whoami-v2")
            return self._whoami

    def _namespace(self, namespace: str | None) -> str:
        return namespace or str(self.whoami()["name"])

    # -- repos ---------------------------------------------------------------------------------

    def create_repo(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        repo_type: str | None = None,
        exist_ok: bool = False,
        space_sdk: str | None = None,
        space_hardware: str | None = None,
        space_storage: str | None = None,
        space_sleep_time: int | None = None,
        space_secrets: list[dict[str, str]] | None = None,
        space_variables: list[dict[str, str]] | None = None,
    ) -> RepoUrl:
        """Create a repo (409 is success with `exist_ok`)."""
        organization, name = _split_repo_id(repo_id)
        repo_type = repo_type or "model"
        _repo_path(repo_type)
        body: dict[str, Any] = {"name": name, "organization": organization}
        if private is not None:
            body["visibility"] = "private" if private else "public"
        if repo_type != "model":
            body["type"] = repo_type
        if repo_type == "space":
            if space_sdk is None:
                raise ValueError(
                    "space_sdk is required to create a Space: one of gradio, streamlit, docker, "
                    "static."
                )
            body["sdk"] = space_sdk
            for key, value in (
                ("hardware", space_hardware),
                ("storageTier", space_storage),
                ("sleepTimeSeconds", space_sleep_time),
                ("secrets", space_secrets),
                ("variables", space_variables),
            ):
                if value is not None:
                    body[key] = value
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        try:
            data = self._json("POST", "/api/repos/create", json=body)
            url = data["url"]
        except Conflict as exc:
            if not exist_ok:
                raise
            body_json = exc.response.json() if exc.response is not None else {}
            url = body_json.get("url") or f"{self.endpoint}/{prefix}{repo_id}"
        except (Unauthorized, Forbidden) as exc:
            # A token without create rights may still own the repo already.
            if not exist_ok:
                raise
            try:
                self.repo_info(repo_id, repo_type=repo_type)
            except HubError:
                raise exc from None
            url = f"{self.endpoint}/{prefix}{repo_id}"
        full_id = repo_id if organization else f"{self.whoami()['name']}/{name}"
        return RepoUrl(url, full_id, repo_type)

    def repo_info(
        self, repo_id: str, *, repo_type: str | None = None, revision: str | None = None
    ) -> dict[str, Any]:
        path = f"/api/{_repo_path(repo_type)}/{repo_id}"
        if revision:
            path += f"/revision/{quote(revision, safe='')}"
        return dict(self._json("GET", path))

    def space_info(self, repo_id: str, *, revision: str | None = None) -> dict[str, Any]:
        return self.repo_info(repo_id, repo_type="space", revision=revision)

    def delete_repo(
        self, repo_id: str, *, repo_type: str | None = None, missing_ok: bool = False
    ) -> None:
        organization, name = _split_repo_id(repo_id)
        body: dict[str, Any] = {"name": name, "organization": organization}
        if repo_type and repo_type != "model":
            body["type"] = repo_type
        try:
            self._http.request("DELETE", "/api/repos/delete", json=body)
        except RepoNotFound:
            if not missing_ok:
                raise

    # -- Spaces --------------------------------------------------------------------------------

    def _runtime(self, method: str, path: str, **kwargs: Any) -> SpaceRuntime:
        return SpaceRuntime.from_json(self._json(method, path, **kwargs))

    def list_space_hardware(self) -> list[dict[str, Any]]:
        """The Space hardware the Hub offers: name, prettyName, unitCostUSD, unitLabel, ..."""
        return list(self._http.request("GET", "/api/spaces/hardware").json())

    def space_hardware_prices(self) -> dict[str, float]:
        """USD per hour of each Space hardware flavor the Hub prices by the hour."""
        return {
            h["name"]: float(h["unitCostUSD"])
            for h in self.list_space_hardware()
            if h.get("unitLabel", "hour") == "hour" and h.get("unitCostUSD") is not None
        }

    def get_space_runtime(self, repo_id: str) -> SpaceRuntime:
        return self._runtime("GET", f"/api/spaces/{repo_id}/runtime")

    def request_space_hardware(
        self, repo_id: str, hardware: str, *, sleep_time: int | None = None
    ) -> SpaceRuntime:
        """Ask for `hardware` (a `SpaceHardware` value); the Space restarts on it."""
        body: dict[str, Any] = {"flavor": str(getattr(hardware, "value", hardware))}
        if sleep_time is not None:
            body["sleepTimeSeconds"] = sleep_time
        return self._runtime("POST", f"/api/spaces/{repo_id}/hardware", json=body, idempotent=True)

    def set_space_sleep_time(self, repo_id: str, sleep_time: int) -> SpaceRuntime:
        return self._runtime(
            "POST",
            f"/api/spaces/{repo_id}/sleeptime",
            json={"seconds": sleep_time},
            idempotent=True,
        )

    def pause_space(self, repo_id: str) -> SpaceRuntime:
        return self._runtime("POST", f"/api/spaces/{repo_id}/pause", idempotent=True)

    def restart_space(self, repo_id: str, *, factory_reboot: bool = False) -> SpaceRuntime:
        params = {"factory": "true"} if factory_reboot else None
        return self._runtime("POST", f"/api/spaces/{repo_id}/restart", params=params)

    def add_space_secret(
        self, repo_id: str, key: str, value: str, *, description: str | None = None
    ) -> None:
        body = {"key": key, "value": value}
        if description is not None:
            body["description"] = description
        self._http.request("POST", f"/api/spaces/{repo_id}/secrets", json=body, idempotent=True)

    def get_space_secrets(self, repo_id: str) -> dict[str, dict[str, Any]]:
        """The Space's secret names with their description (the Hub never returns values)."""
        return dict(self._json("GET", f"/api/spaces/{repo_id}/secrets") or {})

    def delete_space_secret(self, repo_id: str, key: str) -> None:
        self._http.request("DELETE", f"/api/spaces/{repo_id}/secrets", json={"key": key})

    def get_space_variables(self, repo_id: str) -> dict[str, SpaceVariable]:
        data = self._json("GET", f"/api/spaces/{repo_id}/variables") or {}
        return {k: SpaceVariable.from_json(k, v) for k, v in data.items()}

    def add_space_variable(
        self, repo_id: str, key: str, value: str, *, description: str | None = None
    ) -> dict[str, SpaceVariable]:
        body = {"key": key, "value": value}
        if description is not None:
            body["description"] = description
        data = self._json("POST", f"/api/spaces/{repo_id}/variables", json=body, idempotent=True)
        return {k: SpaceVariable.from_json(k, v) for k, v in (data or {}).items()}

    def delete_space_variable(self, repo_id: str, key: str) -> dict[str, SpaceVariable]:
        data = self._json("DELETE", f"/api/spaces/{repo_id}/variables", json={"key": key})
        return {k: SpaceVariable.from_json(k, v) for k, v in (data or {}).items()}

    def request_space_storage(self, repo_id: str, storage: str) -> SpaceRuntime:
        tier = str(getattr(storage, "value", storage))
        return self._runtime(
            "POST", f"/api/spaces/{repo_id}/storage", json={"tier": tier}, idempotent=True
        )

    def delete_space_storage(self, repo_id: str) -> SpaceRuntime:
        return self._runtime("DELETE", f"/api/spaces/{repo_id}/storage")

    def duplicate_space(
        self,
        from_id: str,
        to_id: str | None = None,
        *,
        private: bool | None = None,
        hardware: str | None = None,
        storage: str | None = None,
        sleep_time: int | None = None,
        secrets: list[dict[str, str]] | None = None,
        variables: list[dict[str, str]] | None = None,
        exist_ok: bool = False,
    ) -> RepoUrl:
        """Copy a Space server-side (history included) to `to_id` (default: yours, same name)."""
        namespace, name = _split_repo_id(to_id) if to_id else (None, from_id.rsplit("/", 1)[-1])
        target = f"{namespace or self.whoami()['name']}/{name}"
        body: dict[str, Any] = {"repository": target}
        if private is not None:
            body["visibility"] = "private" if private else "public"
        for key, value in (
            ("hardware", hardware),
            ("storageTier", storage),
            ("sleepTimeSeconds", sleep_time),
            ("secrets", secrets),
            ("variables", variables),
        ):
            if value is not None:
                body[key] = value
        try:
            url = self._json("POST", f"/api/spaces/{from_id}/duplicate", json=body)["url"]
        except Conflict:
            if not exist_ok:
                raise
            url = f"{self.endpoint}/spaces/{target}"
        return RepoUrl(url, target, "space")

    def wait_for_space(
        self,
        repo_id: str,
        stage: str = "RUNNING",
        *,
        hardware: str | None = None,
        timeout: float = 600.0,
        poll_interval: float = 1.0,
        progress: Progress | None = None,
    ) -> SpaceRuntime:
        """Poll the runtime until the Space is at `stage` (and on `hardware`, if given).

        Raises `SpaceWaitError` carrying the last runtime when the Space lands in an error
        stage or the wait times out.
        """
        progress = progress or Progress(f"Waiting for {repo_id} to be {stage}")
        deadline = time.monotonic() + timeout
        runtime: SpaceRuntime | None = None
        while True:
            runtime = self.get_space_runtime(repo_id)
            on = runtime.hardware or runtime.requested_hardware
            progress.update(f"{runtime.stage} on {on or 'no hardware yet'}")
            if runtime.stage == stage and (hardware is None or runtime.hardware == hardware):
                progress.close(f"{runtime.stage} on {runtime.hardware}")
                return runtime
            if runtime.stage in ERROR_STAGES and runtime.stage != stage:
                detail = f": {runtime.error_message}" if runtime.error_message else ""
                raise SpaceWaitError(f"Space {repo_id} is {runtime.stage}{detail}", runtime)
            if time.monotonic() >= deadline:
                raise SpaceWaitError(
                    f"Space {repo_id} still {runtime.stage} after {timeout:g} s "
                    f"(waiting for {stage}{f' on {hardware}' if hardware else ''})",
                    runtime,
                )
            time.sleep(poll_interval)

    # -- webhooks ------------------------------------------------------------------------------

    @staticmethod
    def _watched(watched: list[WebhookWatchedItem | dict[str, str]]) -> list[dict[str, str]]:
        return [
            {"type": w.type, "name": w.name} if isinstance(w, WebhookWatchedItem) else dict(w)
            for w in watched
        ]

    def create_webhook(
        self,
        *,
        url: str,
        watched: list[WebhookWatchedItem | dict[str, str]],
        domains: list[str] | None = None,
        secret: str | None = None,
    ) -> WebhookInfo:
        body: dict[str, Any] = {
            "watched": self._watched(watched),
            "domains": domains if domains is not None else list(WEBHOOK_DOMAINS),
        }
        if secret is not None:
            body["secret"] = secret
        body["url"] = url
        return WebhookInfo.from_json(
            self._json("POST", "/api/settings/webhooks", json=body)["webhook"]
        )

    def list_webhooks(self) -> list[WebhookInfo]:
        return [WebhookInfo.from_json(w) for w in self._json("GET", "/api/settings/webhooks")]

    def get_webhook(self, webhook_id: str) -> WebhookInfo:
        data = self._json("GET", f"/api/settings/webhooks/{webhook_id}")
        return WebhookInfo.from_json(data["webhook"])

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        watched: list[WebhookWatchedItem | dict[str, str]] | None = None,
        domains: list[str] | None = None,
        secret: str | None = None,
    ) -> WebhookInfo:
        body: dict[str, Any] = {"watched": self._watched(watched or [])}
        for key, value in (("url", url), ("domains", domains), ("secret", secret)):
            if value is not None:
                body[key] = value
        data = self._json(
            "POST", f"/api/settings/webhooks/{webhook_id}", json=body, idempotent=True
        )
        return WebhookInfo.from_json(data["webhook"])

    def enable_webhook(self, webhook_id: str) -> WebhookInfo:
        data = self._json("POST", f"/api/settings/webhooks/{webhook_id}/enable", idempotent=True)
        return WebhookInfo.from_json(data["webhook"])

    def disable_webhook(self, webhook_id: str) -> WebhookInfo:
        data = self._json("POST", f"/api/settings/webhooks/{webhook_id}/disable", idempotent=True)
        return WebhookInfo.from_json(data["webhook"])

    def delete_webhook(self, webhook_id: str) -> None:
        self._http.request("DELETE", f"/api/settings/webhooks/{webhook_id}")

    # -- discussions ---------------------------------------------------------------------------

    def create_discussion(
        self,
        repo_id: str,
        title: str,
        *,
        description: str | None = None,
        repo_type: str | None = None,
        pull_request: bool = False,
    ) -> DiscussionWithDetails:
        kind = "Pull Request" if pull_request else "Discussion"
        body = {
            "title": title.strip(),
            "description": (description or "").strip() or f"{kind} opened with spacehooks.",
            "pullRequest": pull_request,
        }
        path = f"/api/{_repo_path(repo_type)}/{repo_id}/discussions"
        num = self._json("POST", path, json=body)["num"]
        return self.get_discussion_details(repo_id, num, repo_type=repo_type)

    def create_pull_request(
        self,
        repo_id: str,
        title: str,
        *,
        description: str | None = None,
        repo_type: str | None = None,
    ) -> DiscussionWithDetails:
        return self.create_discussion(
            repo_id, title, description=description, repo_type=repo_type, pull_request=True
        )

    def get_discussion_details(
        self, repo_id: str, discussion_num: int, *, repo_type: str | None = None
    ) -> DiscussionWithDetails:
        if not isinstance(discussion_num, int) or discussion_num <= 0:
            raise ValueError(f"discussion_num must be a positive integer, got {discussion_num!r}.")
        path = f"/api/{_repo_path(repo_type)}/{repo_id}/discussions/{discussion_num}"
        return DiscussionWithDetails.from_json(self._json("GET", path, params={"diff": "1"}))

    def comment_discussion(
        self, repo_id: str, discussion_num: int, comment: str, *, repo_type: str | None = None
    ) -> DiscussionComment:
        path = f"/api/{_repo_path(repo_type)}/{repo_id}/discussions/{discussion_num}/comment"
        data = self._json("POST", path, json={"comment": comment})
        return DiscussionComment.from_json(data["newMessage"])

    def merge_pull_request(
        self,
        repo_id: str,
        discussion_num: int,
        *,
        comment: str | None = None,
        repo_type: str | None = None,
    ) -> None:
        """Merge an open pull request into its target branch."""
        body = {"comment": comment.strip()} if comment and comment.strip() else {}
        path = f"/api/{_repo_path(repo_type)}/{repo_id}/discussions/{discussion_num}/merge"
        self._http.request("POST", path, json=body)

    def change_discussion_status(
        self,
        repo_id: str,
        discussion_num: int,
        new_status: str,
        *,
        comment: str | None = None,
        repo_type: str | None = None,
    ) -> DiscussionComment:
        if new_status not in ("open", "closed"):
            raise ValueError(f"new_status must be 'open' or 'closed', got {new_status!r}.")
        body = {"status": new_status}
        if comment and comment.strip():
            body["comment"] = comment.strip()
        path = f"/api/{_repo_path(repo_type)}/{repo_id}/discussions/{discussion_num}/status"
        return DiscussionComment.from_json(self._json("POST", path, json=body)["newStatus"])
