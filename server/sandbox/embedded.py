"""The sandbox inside `spacehooks serve`: what runs when there is no HF_TOKEN.

The sandbox gets its own uvicorn server on its own thread and port (so a handler blocked on a
synchronous client call can never block the sandbox answering it), the clients are pointed at
it, and the server's own webhooks are registered in it. The demo handler below is included only
in this mode: a commit to the demo dataset puts the demo Space on a GPU.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn
from pydantic import SecretStr

from ..client import HubClient, HubError
from ..routing import Router
from ..settings import Settings
from .app import PROVIDER_PATH, Sandbox

__all__ = ["EmbeddedSandbox", "demo_router"]

log = logging.getLogger("spacehooks.sandbox")

demo_router = Router()


@demo_router.on(
    "repo.content",
    repo_type="dataset",
    repos=["demo/corpus"],
    refs=["refs/heads/main"],
    name="sandbox-demo.gpu-on-commit",
)
def put_trainer_on_gpu(hub: HubClient) -> dict[str, Any]:
    """Sandbox demo: new data in demo/corpus puts the demo/trainer Space on a T4 for an hour."""
    runtime = hub.request_space_hardware("demo/trainer", "t4-small", sleep_time=3600)
    return {
        "space": "demo/trainer",
        "requested": runtime.requested_hardware,
        "stage": runtime.stage,
    }


_THREAD = "spacehooks-sandbox"


class _QuietSandboxServer(logging.Filter):
    """Drops uvicorn's own lines about the sandbox's server ("Uvicorn running on ..."): next to
    the main server's, they read as if the app were listening on the sandbox's port."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != _THREAD


class EmbeddedSandbox:
    """A `Sandbox` served on loopback in this process."""

    def __init__(self, *, speed: float = 10.0, token: str | None = None, port: int = 0) -> None:
        self.sandbox = Sandbox(speed, demo_token=token)
        # No log_level/log_config: uvicorn would set its shared loggers' levels and silence the
        # main server's own lines.
        config = uvicorn.Config(
            self.sandbox.app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        quiet = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietSandboxServer) for f in quiet.filters):
            quiet.addFilter(_QuietSandboxServer())
        self._thread = threading.Thread(target=self._server.run, name=_THREAD, daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"The sandbox could not listen on 127.0.0.1:{port}.")
            time.sleep(0.01)
        bound = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{bound}"
        self.sandbox.base_url = self.url

    @property
    def token(self) -> str:
        return self.sandbox.demo.token

    def settings_for(self, settings: Settings) -> Settings:
        """`settings` with the Hub and the instance provider pointed at this sandbox."""
        return settings.model_copy(
            update={
                "hf_endpoint": self.url,
                "hf_token": SecretStr(self.token),
                "cortecs_api_base_url": self.url + PROVIDER_PATH,
                "cortecs_client_id": "demo-client",
                "cortecs_client_secret": SecretStr(self.token),
            }
        )

    def register(self, base_url: str, paths: list[str], secret: str | None) -> None:
        """Point a sandbox webhook at each of the server's webhook URLs (watching `demo`)."""
        hub = HubClient(self.url, self.token, env={})
        for path in paths:
            try:
                hook = hub.create_webhook(
                    url=base_url.rstrip("/") + path,
                    secret=secret,
                    watched=[{"type": "user", "name": "demo"}],
                    domains=["repo", "discussion"],
                )
            except HubError as exc:  # the server still serves; only the demo loop is missing
                log.error("Could not register the sandbox webhook for %s: %s", path, exc)
                continue
            log.info("sandbox webhook %s -> %s%s", hook.id, base_url.rstrip("/"), path)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.sandbox.close()
