"""A huggingface_hub-style script, unchanged but for the import: `@webhook_endpoint` functions,
served when the interpreter exits (or at once with `fn.launch()`, when LAUNCH_NOW is set)."""

import os

from server import WebhookPayload, webhook_endpoint


@webhook_endpoint
async def trigger_training(payload: WebhookPayload):
    return {"training": payload.repo.name}


@webhook_endpoint("/say_hello")
def hello(payload: WebhookPayload):
    return {"message": "hello"}


if os.environ.get("LAUNCH_NOW"):
    hello.launch()
