"""A careless handler: it logs the token it was given and fails with the secret in its error.
The server must keep both out of its logs anyway."""

from __future__ import annotations

import logging
import os

from server import GiveUp, HubClient, Router, WebhookPayload

router = Router()
log = logging.getLogger("leaky")


@router.on("repo", name="leaky")
def leaky(payload: WebhookPayload, hub: HubClient) -> None:
    log.warning("acting for %s with token %s", hub.whoami()["name"], hub.token)
    raise GiveUp(f"refusing: the secret is {os.environ['WEBHOOK_SECRET']}")
