"""ASGI entry point for plain uvicorn: ``uvicorn server.asgi:app``.

Reads the environment, loads the `handlers` package, and builds the app, at import time: that is
what an ASGI entry module is for. Library code should call `create_app` instead.
"""

from __future__ import annotations

from fastapi import FastAPI

from .cli import build_server
from .settings import Settings

__all__ = ["app", "create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """A FastAPI app serving every handler of the `handlers` package (`uvicorn --factory`)."""
    server = build_server(settings or Settings.from_env())
    return server.fastapi_app  # type: ignore[attr-defined,no-any-return]


app = create_app()
