"""Running a `WebhooksServer` under uvicorn, listing its URLs, and the optional tunnel."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = ["configure_logging", "open_tunnel", "serve", "webhook_urls"]

log = logging.getLogger("spacehooks")


def configure_logging(level: str) -> None:
    """One line per event on stderr, unless the host program configured logging already."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("spacehooks").setLevel(level)


def webhook_urls(server: WebhooksServer, base_url: str) -> list[str]:
    return [f"{base_url.rstrip('/')}{path}" for path in server.router.paths()]


def open_tunnel(port: int) -> str | None:
    """Open Gradio's share tunnel to `port`; None (and one log line) when it cannot."""
    try:
        from gradio.networking import setup_tunnel

        return setup_tunnel("127.0.0.1", port, secrets.token_urlsafe(32), None, None)
    except Exception as exc:  # noqa: BLE001 - no network is an expected condition
        log.warning(
            "--share: could not open a public tunnel (%s: %s); serving locally only.",
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "no detail",
        )
        return None


def _announce(server: WebhooksServer, userver: uvicorn.Server, port: int, share: bool) -> None:
    while not userver.started and not userver.should_exit:
        time.sleep(0.05)
    if userver.should_exit:
        return
    shown_host = "127.0.0.1" if userver.config.host in ("0.0.0.0", "::") else userver.config.host
    base = server.settings.public_url(f"http://{shown_host}:{port}")
    if share:
        tunnel = open_tunnel(port)
        if tunnel:
            base = tunnel
    lines = "\n".join(f"  - POST {url}" for url in webhook_urls(server, base)) or "  (none)"
    log.info("Webhooks are ready:\n%s\nRegister them at https://huggingface.co/settings/webhooks", lines)


def serve(
    server: WebhooksServer,
    *,
    host: str | None = None,
    port: int | None = None,
    share: bool = False,
    block: bool = True,
) -> uvicorn.Server:
    """Serve on `host:port` (0.0.0.0:7860 on a Space, else 127.0.0.1:7860)."""
    configure_logging(server.settings.log_level)
    host = host or ("0.0.0.0" if server.settings.on_space else "127.0.0.1")
    port = port or 7860
    config = uvicorn.Config(
        server.fastapi_app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(server.settings.shutdown_grace) + 5,
    )
    userver = uvicorn.Server(config)
    threading.Thread(
        target=_announce, args=(server, userver, port, share), daemon=True, name="spacehooks-announce"
    ).start()
    if block:
        userver.run()
    else:
        threading.Thread(target=userver.run, daemon=True, name="spacehooks-uvicorn").start()
        while not userver.started:
            time.sleep(0.02)
    return userver
