"""The trivial handler the benchmarks time spacehooks with (loaded with --handlers)."""

from __future__ import annotations

from server import Router, WebhookPayload

router = Router()


@router.on("repo.content", name="bench")
async def bench(payload: WebhookPayload) -> dict:
    return {"ok": True}
