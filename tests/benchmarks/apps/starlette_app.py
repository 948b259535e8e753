"""The floor: a bare Starlette route that reads the body and returns 200, under uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hub(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/webhooks/hub", hub, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
