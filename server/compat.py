"""huggingface_hub's module-level `@webhook_endpoint`, built on `WebhooksServer`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .app import WebhooksServer

__all__ = ["webhook_endpoint"]

F = TypeVar("F", bound=Callable[..., Any])

_shared_server: WebhooksServer | None = None


def webhook_endpoint(path: str | Callable[..., Any] | None = None) -> Callable[[F], F]:
    """Register a webhook on one shared server that starts when the script ends.

    `fn.launch()` starts it at once instead (huggingface_hub's notebook usage). This is the one
    place spacehooks sets an attribute on a user's function, because that API requires it.
    """
    if callable(path):
        return webhook_endpoint()(path)  # type: ignore[return-value]

    def register(fn: F) -> F:
        global _shared_server
        if _shared_server is None:
            _shared_server = WebhooksServer(routers=[])
            _launch_at_exit(_shared_server)
        server = _shared_server
        server.add_webhook(path)(fn)

        def launch_now(**kwargs: Any) -> None:
            server._launched = True
            server.launch(**kwargs)

        fn.launch = launch_now  # type: ignore[attr-defined]
        return fn

    return register


def _launch_at_exit(server: WebhooksServer) -> None:
    # Not `atexit`: by the time atexit callbacks run, concurrent.futures has shut its thread
    # pools down, and the server needs them (sync handlers, database calls). Threading's exit
    # hooks run earlier, newest first, so one registered now (after concurrent.futures was
    # imported by this package) runs while the pools still work. It is the hook
    # concurrent.futures itself uses; private, hence contained here.
    import threading

    def launch_unless_launched() -> None:
        if not server._launched:
            server.launch()

    threading._register_atexit(launch_unless_launched)  # type: ignore[attr-defined]
