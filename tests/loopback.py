"""Serve an ASGI app on a free loopback port, in a thread, for the length of a `with`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.pg import free_port


@contextmanager
def serve(app: Any, lifespan: str = "off") -> Iterator[str]:
    """Yields the base URL; stops the server when the block ends (running the app's lifespan
    when `lifespan="on"`)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("loopback server failed to start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
