"""An automation under test, end to end: the sandbox Hub delivers its webhooks to a real
spacehooks server on loopback, which runs the automation's handlers against the sandbox."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from server import Router, Settings, WebhooksServer
from server.sandbox.app import PROVIDER_PATH
from tests.conftest import SandboxHub
from tests.loopback import serve

SECRET = "automation-secret"


class Running:
    def __init__(self, hub: SandboxHub, app: WebhooksServer, url: str) -> None:
        self.sandbox_hub, self.app, self.url = hub, app, url

    def api(self, path: str) -> Any:
        response = requests.get(self.url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def audit(self) -> list[dict[str, Any]]:
        """The audit log, oldest first."""
        assert self.app.db is not None
        from server.audit import Audit

        return list(reversed(Audit(self.app.db, None, "test").entries(1000)))

    def deliveries(self) -> list[dict[str, Any]]:
        return self.api("/api/deliveries?limit=500")["items"]

    def settled(self, timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until no delivery is queued, running or retrying; return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.deliveries()
            if items and all(d["status"] in ("succeeded", "dead", "unhandled") for d in items):
                return items
            time.sleep(0.05)
        raise AssertionError(f"deliveries did not settle: {self.deliveries()}")


def settings_for(hub: SandboxHub, db: Path, **env: str) -> Settings:
    token = hub.sandbox.demo.token
    return Settings.from_env(
        {
            "HF_ENDPOINT": hub.url,
            "HF_TOKEN": token,
            "WEBHOOK_SECRET": SECRET,
            "SPACEHOOKS_DB": str(db),
            "SPACEHOOKS_POLL_INTERVAL": "0.05",
            "CORTECS_CLIENT_ID": "demo-client",
            "CORTECS_CLIENT_SECRET": token,
            "CORTECS_API_BASE_URL": hub.url + PROVIDER_PATH,
            **env,
        }
    )


@contextlib.contextmanager
def running(
    hub: SandboxHub, router: Router, db: Path, watched: list[dict[str, str]] | None, **env: str
) -> Iterator[Running]:
    """Serve `router` and, if `watched` is given, register a sandbox webhook for those repos
    (deleted again at the end, so a later server on the same sandbox gets its own)."""
    app = WebhooksServer(ui=False, settings=settings_for(hub, db, **env), routers=[router])
    with serve(app.fastapi_app, lifespan="on") as url:
        webhook = None
        if watched:
            webhook = hub.hub.create_webhook(
                url=url + "/webhooks/hub",
                watched=watched,
                domains=["repo", "discussion"],
                secret=SECRET,
            )
        try:
            yield Running(hub, app, url)
        finally:
            if webhook is not None:
                hub.hub.delete_webhook(webhook.id)
