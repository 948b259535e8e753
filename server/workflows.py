"""What the `spacehooks` commands do besides serving: register webhooks, deploy a Space, send
test events. Each function raises `UsageError` (exit 2) for input the user can fix and
`HubError`/`WorkflowError` (exit 1) for what failed; `cli.py` turns both into one line.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .client import HubClient, HubError, SpaceWaitError, WebhookInfo
from .client.commits import CommitOperationAdd, CommitOperationDelete
from .client.models import SpaceHardware, SpaceStorage
from .security import sign_standard

__all__ = [
    "SAMPLES",
    "TunnelRegistration",
    "UsageError",
    "WorkflowError",
    "deploy",
    "deploy_files",
    "parse_watch",
    "register",
    "send",
]

log = logging.getLogger("spacehooks")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {
    "repo.content:update": "repo-content-main-and-tag.json",
    "repo.config:update": "repo-config-private.json",
    "discussion:create": "discussion-create-pr.json",
    "discussion:update": "discussion-update-closed.json",
    "discussion.comment:create": "comment-create.json",
}
WATCH_TYPES = ("user", "org", "model", "dataset", "space")


class UsageError(Exception):
    """Input the user can fix; the message names the allowed form."""


class WorkflowError(Exception):
    """A step that could not be completed."""


def parse_watch(spec: str) -> dict[str, str]:
    """`user:NAME`, `org:NAME`, `model:NS/NAME`, `dataset:NS/NAME`, `space:NS/NAME`."""
    kind, _, name = spec.partition(":")
    repo_kind = kind in ("model", "dataset", "space")
    if (
        kind not in WATCH_TYPES
        or not name
        or (repo_kind and name.count("/") != 1)
        or (not repo_kind and "/" in name)
    ):
        raise UsageError(
            f"--watch {spec!r} is not valid: use user:NAME, org:NAME, model:NS/NAME, "
            "dataset:NS/NAME or space:NS/NAME."
        )
    return {"type": kind, "name": name}


def _domains(domains: Sequence[str]) -> list[str]:
    for domain in domains:
        if domain not in ("repo", "discussion"):
            raise UsageError(f"--domain {domain!r} is not valid: use repo or discussion.")
    return list(domains) or ["repo", "discussion"]


def register(
    hub: HubClient,
    url: str,
    watched: list[dict[str, str]],
    domains: Sequence[str],
    secret: str | None,
) -> tuple[WebhookInfo, bool]:
    """Create the webhook pointing at `url`, or update the one that already does.
    Returns (webhook, created)."""
    if not re.match(r"^https?://", url):
        raise UsageError(f"{url!r} is not a URL: use https://host/webhooks/hub.")
    if not watched:
        raise UsageError("Say what to watch: --watch user:NAME (repeatable).")
    existing = next((w for w in hub.list_webhooks() if w.url == url), None)
    if existing is None:
        return hub.create_webhook(
            url=url, watched=watched, domains=_domains(domains), secret=secret
        ), True
    return hub.update_webhook(
        existing.id, url=url, watched=watched, domains=_domains(domains), secret=secret
    ), False


def deploy_files(root: Path = ROOT) -> dict[str, Path]:
    """The exact files `deploy` uploads: space/ at the Space's root, then the project."""
    files: dict[str, Path] = {}
    for path in sorted((root / "space").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(root / "space").as_posix()] = path
    for package in ("server", "handlers"):
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[path.relative_to(root).as_posix()] = path
    files["pyproject.toml"] = root / "pyproject.toml"  # requirements.txt installs it
    return files


def _subdomain(space_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", space_id.replace("/", "-").lower()).strip("-")


@dataclass
class Deployment:
    space_id: str
    commit: str | None
    uploaded: list[str]
    generated_secret: str | None
    webhook: WebhookInfo | None
    console_url: str


def deploy(
    hub: HubClient,
    space_id: str,
    *,
    hardware: str = "cpu-basic",
    private: bool = False,
    storage: str | None = None,
    sleep_time: int | None = None,
    secret: str | None = None,
    watched: list[dict[str, str]] | None = None,
    public_url: str | None = None,
    root: Path = ROOT,
    timeout: float = 1800.0,
    poll_interval: float = 2.0,
    say: Callable[[str], None] = print,
) -> Deployment:
    """Create or update the Space, upload the server, configure it, wait, register the webhook."""
    if space_id.count("/") != 1 or not all(space_id.split("/")):
        raise UsageError(f"Space id {space_id!r} needs a namespace: use user/name.")
    allowed = [h.value for h in SpaceHardware]
    if hardware not in allowed:
        raise UsageError(f"--hardware {hardware!r} is unknown: use one of {', '.join(allowed)}.")
    if storage is not None and storage not in [s.value for s in SpaceStorage]:
        raise UsageError(f"--storage {storage!r} is unknown: use small, medium or large.")
    if not hub.has_token:
        raise UsageError("deploy needs a Hub token with write access: set HF_TOKEN.")
    owner = space_id.split("/")[0]

    hub.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    files = deploy_files(root)
    remote = set(hub.list_repo_files(space_id, repo_type="space"))
    stale = sorted(p for p in remote if p.startswith(("server/", "handlers/")) and p not in files)
    operations: list[Any] = [CommitOperationAdd(p, local) for p, local in files.items()]
    operations += [CommitOperationDelete(p) for p in stale]
    info = hub.create_commit(
        space_id, operations, repo_type="space", commit_message="Deploy spacehooks"
    )
    uploaded = [
        op.path_in_repo
        for op in operations
        if isinstance(op, CommitOperationAdd) and not op.unchanged
    ]
    say(
        f"Uploaded {len(uploaded)} changed file(s) of {len(files)}"
        + (f", deleted {len(stale)}" if stale else "")
        + f" ({info.oid[:8]})."
    )

    generated = None
    existing_secrets = hub.get_space_secrets(space_id)
    if secret is None and "WEBHOOK_SECRET" not in existing_secrets:
        secret = generated = secrets.token_urlsafe(24)
        say(f"Generated WEBHOOK_SECRET (shown once, keep it): {generated}")
    if secret is not None:
        hub.add_space_secret(
            space_id,
            "WEBHOOK_SECRET",
            secret,
            description="spacehooks: shared secret of the Hub's webhooks",
        )
    hub.add_space_secret(
        space_id, "HF_TOKEN", hub.token or "", description="spacehooks: token its handlers act with"
    )
    hub.request_space_hardware(space_id, hardware, sleep_time=sleep_time)
    if storage is not None:
        hub.request_space_storage(space_id, storage)
    try:
        hub.wait_for_space(
            space_id, hardware=hardware, timeout=timeout, poll_interval=poll_interval
        )
    except SpaceWaitError as exc:
        raise WorkflowError(str(exc)) from None
    base = (public_url or f"https://{_subdomain(space_id)}.hf.space").rstrip("/")
    webhook, _ = register(
        hub,
        f"{base}/webhooks/hub",
        watched or [{"type": "user", "name": owner}],
        ["repo", "discussion"],
        secret,
    )
    return Deployment(space_id, info.oid, uploaded, generated, webhook, base + "/")


def send(
    url: str,
    *,
    event: str = "repo.content:update",
    payload_file: Path | None = None,
    secret: str | None = None,
    sign: bool = False,
    timeout: float = 30.0,
) -> tuple[int, str, str | None]:
    """POST a sample (or given) payload as the Hub would. Returns (status, body, delivery id)."""
    if payload_file is not None:
        try:
            body = payload_file.read_bytes()
            json.loads(body)
        except OSError as exc:
            raise UsageError(
                f"--payload {str(payload_file)!r} cannot be read: {exc.strerror}."
            ) from None
        except ValueError:
            raise UsageError(f"--payload {str(payload_file)!r} is not JSON.") from None
    else:
        if event not in SAMPLES:
            raise UsageError(f"--event {event!r} has no sample: use one of {', '.join(SAMPLES)}.")
        body = (Path(__file__).parent / "samples" / SAMPLES[event]).read_bytes()
    headers = {"content-type": "application/json", "user-agent": "spacehooks-send"}
    if secret:
        headers["x-webhook-secret"] = secret
    if sign:
        if not secret:
            raise UsageError("--sign needs a secret: --secret S or WEBHOOK_SECRET.")
        msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
        headers.update(
            {
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign_standard(secret, msg_id, stamp, body),
            }
        )
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise WorkflowError(f"No answer from {url}: {type(exc).__name__}.") from None
    delivery = response.headers.get("x-spacehooks-delivery")
    if delivery is None:
        try:
            data = response.json()
            delivery = data.get("delivery_id") or data.get("duplicate_of")
        except (ValueError, AttributeError):
            delivery = None
    return response.status_code, response.text, delivery


class TunnelRegistration:
    """`serve --share --register ID`: the webhook points at the tunnel while serving, and back
    at its previous URL afterwards."""

    def __init__(self, hub: Any, webhook_id: str, paths: list[str]) -> None:
        self.hub, self.webhook_id, self.paths = hub, webhook_id, paths
        self.previous: Any = None

    def point(self, tunnel: str | None) -> None:
        try:
            self._point(tunnel)
        except HubError as exc:  # the server still serves locally
            log.error(
                "--register: could not point webhook %s at the tunnel: %s", self.webhook_id, exc
            )

    def _point(self, tunnel: str | None) -> None:
        if tunnel is None:
            log.warning("--register: no tunnel, so webhook %s was left as it is.", self.webhook_id)
            return
        self.previous = self.hub.get_webhook(self.webhook_id)
        path = "/webhooks/hub" if "/webhooks/hub" in self.paths else self.paths[0]
        self.hub.update_webhook(
            self.webhook_id,
            url=tunnel.rstrip("/") + path,
            watched=self.previous.watched,
            domains=self.previous.domains,
        )
        log.info(
            "Webhook %s now points at %s%s until this server stops.",
            self.webhook_id,
            tunnel.rstrip("/"),
            path,
        )

    def restore(self) -> None:
        if self.previous is None:
            return
        try:
            self._restore()
        except HubError as exc:
            log.error(
                "--register: could not restore webhook %s to %s: %s",
                self.webhook_id,
                self.previous.url,
                exc,
            )

    def _restore(self) -> None:
        self.hub.update_webhook(
            self.webhook_id,
            url=self.previous.url,
            watched=self.previous.watched,
            domains=self.previous.domains,
        )
        log.info("Webhook %s points at %s again.", self.webhook_id, self.previous.url)
