"""The Gradio landing page, mounted lazily so that webhooks never wait for Gradio.

Importing Gradio takes seconds. `LazyUI` is mounted at `/` of spacehooks' FastAPI app from the
start; until the UI is ready it answers with a small "starting" page. `load` imports Gradio and
builds the page in a worker thread, mounts it with `gradio.mount_gradio_app` onto a holder app,
enters that app's lifespan (Gradio's startup events) on our loop, and from then on forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = [
    "LazyUI",
    "import_gradio",
    "landing_intro",
    "landing_register",
    "webhook_urls_for",
]

log = logging.getLogger("spacehooks.ui")

_GRADIO_IMPORT = threading.Lock()


def import_gradio() -> Any:
    """Import Gradio once, from any thread (two threads importing it at once can each see
    a half-initialised module)."""
    with _GRADIO_IMPORT:
        import gradio
        import gradio.networking

        return gradio


_STARTING = (
    b"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=1>"
    b"<title>spacehooks</title><p>spacehooks is starting its console&hellip; "
    b"webhooks are already being received.</p>"
)


def landing_intro(server: WebhooksServer) -> str:
    """The top of the public landing page: what this server is (and the SANDBOX banner)."""
    sandbox = (
        f"> **SANDBOX**: no `HF_TOKEN` is set, so this server talks to the built-in sandbox Hub "
        f"at {server.sandbox_url}, not to huggingface.co. Commit to the `demo/corpus` dataset "
        "there and watch the `demo/trainer` Space go to a GPU.\n\n"
        if server.sandbox_url
        else ""
    )
    return (
        f"# spacehooks\n\n{sandbox}This server receives Hugging Face Hub webhooks, stores every "
        "delivery durably and runs the automations registered for it, with retries and replay."
        "\n\n## Webhook URLs"
    )


def landing_register(server: WebhooksServer) -> str:
    """The rest of the landing page: the secret's presence (never its value), how to register."""
    secret = (
        "A webhook secret is configured: the Hub must send the same value."
        if server.webhook_secret
        else "**No webhook secret is configured**: these endpoints accept anyone's requests."
    )
    return (
        f"{secret}\n\n## Register a URL on the Hub\n\n"
        "Open https://huggingface.co/settings/webhooks, choose *Add a new webhook*, paste a URL "
        "above, pick the repos or users to watch and the events (repo, discussion), and set the "
        "secret to the value of `WEBHOOK_SECRET` (or run `spacehooks register URL --watch "
        f"user:NAME`).\n\nOperators: {console_link(server)}"
    )


#: Where "Sign in with Hugging Face" starts when the console signs in with the Hub: Gradio's
#: OAuth routes, served at the root (the redirect URI a Space's OAuth app accepts).
HUB_SIGN_IN = "/login/huggingface?_target_url=/console/"


def console_link(server: WebhooksServer) -> str:
    if server.settings.oauth_client_id:
        return f"[sign in with Hugging Face]({HUB_SIGN_IN}) to open the console."
    return "the console is at [/console](console)."


def webhook_urls_for(server: WebhooksServer, headers: Any) -> str:
    """The full webhook URLs as a visitor can reach them: the Space's URL when on a Space, else
    the host the visitor used (a tunnel's included)."""
    if server.settings.space_host:
        base = f"https://{server.settings.space_host}"
    else:
        scheme = headers.get("x-forwarded-proto", "http")
        base = f"{scheme}://{headers.get('x-forwarded-host') or headers.get('host', 'localhost')}"
    return "\n".join(f"{base}{path}" for path in server.router.paths()) or "(none registered)"


def _build_holder(server: WebhooksServer) -> Any:
    """Import Gradio, build the page and mount it on a fresh FastAPI app (runs in a thread)."""
    from fastapi import FastAPI

    gr = import_gradio()

    blocks = server._ui
    if blocks is None:
        with gr.Blocks(title="spacehooks") as blocks:
            gr.Markdown(landing_intro(server))
            urls = gr.Textbox(
                label="POST to",
                buttons=["copy"],
                interactive=False,
                lines=max(1, len(server.router.paths())),
                elem_id="webhook-urls",
            )
            gr.Markdown(landing_register(server))

            def show_urls(request: Any) -> str:
                return webhook_urls_for(server, request.headers)

            # Gradio injects the request by annotation; this module's annotations are strings
            # and Gradio is imported lazily, so give it the real class.
            show_urls.__annotations__["request"] = gr.Request
            blocks.load(show_urls, None, urls)
    holder = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    from .console import build_console, console_access

    access = console_access(server)
    if access.mode == "hub" and not blocks.expects_oauth:
        # Gradio serves its OAuth routes (and keeps their session) in apps with a LoginButton;
        # the page at the root must have one, as the Space's OAuth callback is /login/callback.
        with blocks:
            gr.LoginButton(elem_id="landing-login")
    if access.enabled:
        # Before the landing page: a mount at "/" would catch /console too.
        gr.mount_gradio_app(
            holder,
            build_console(server, access),
            path="/console",
            auth=access.auth,
            auth_message="spacehooks console: the password is "
            "SPACEHOOKS_ADMIN_TOKEN (any user name).",
        )
        # Named, so that route lookups by name (Gradio's OAuth builds its callback URL with
        # `url_for`) skip it and find the root page's routes, the ones a Space's OAuth accepts.
        holder.routes[-1].name = "console"
    return gr.mount_gradio_app(holder, blocks, path="/")


class LazyUI:
    """An ASGI app that forwards to the Gradio app once it is loaded."""

    def __init__(self) -> None:
        self.app: Any = None
        self.failed: str | None = None

    @property
    def routes(self) -> list[Any]:
        """The loaded app's routes, so that `request.url_for` finds the UI's named routes."""
        return self.app.routes if self.app is not None else []

    async def load(self, server: WebhooksServer, stack: contextlib.AsyncExitStack) -> None:
        try:
            holder = await asyncio.to_thread(_build_holder, server)
            await stack.enter_async_context(holder.router.lifespan_context(holder))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("the console could not be loaded; webhooks keep working")
            return
        self.app = holder
        log.info("console ready")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.app is not None:
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013})
            return
        status = 200 if scope["path"] in ("", "/") and not self.failed else 503
        body = _STARTING if not self.failed else b"The console failed to load; see the logs."
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"retry-after", b"1"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
