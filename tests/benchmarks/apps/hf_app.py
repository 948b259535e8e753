"""huggingface_hub's WebhooksServer with the same trivial handler, started as its users do."""

from __future__ import annotations

import sys

from huggingface_hub import WebhookPayload, WebhooksServer

app = WebhooksServer(webhook_secret="bench-secret")


@app.add_webhook("/hub")
async def bench(payload: WebhookPayload) -> dict:
    return {"ok": True}


app.launch(server_port=int(sys.argv[1]), share=False)
