"""spacehooks: a durable, webhook-driven automation server for the Hugging Face Hub.

What handler authors use is re-exported here; `tests/test_public_api.py` pins the list.
"""

from __future__ import annotations

from .app import WebhooksServer
from .audit import Audit, State
from .client import HubClient, InstancesClient
from .commit_scheduler import CommitScheduler
from .compat import webhook_endpoint
from .context import DeliveryContext, GiveUp, RetryLater, ScheduledRun
from .payload import (
    WebhookPayload,
    WebhookPayloadComment,
    WebhookPayloadDiscussion,
    WebhookPayloadDiscussionChanges,
    WebhookPayloadEvent,
    WebhookPayloadMovedTo,
    WebhookPayloadRepo,
    WebhookPayloadUpdatedRef,
    WebhookPayloadUrl,
    WebhookPayloadWebhook,
)
from .routing import RetryPolicy, Router, on, schedule
from .settings import ConfigError, Settings

__version__ = "0.1.0"

__all__ = [
    "Audit",
    "CommitScheduler",
    "ConfigError",
    "DeliveryContext",
    "GiveUp",
    "HubClient",
    "InstancesClient",
    "RetryLater",
    "RetryPolicy",
    "Router",
    "ScheduledRun",
    "Settings",
    "State",
    "WebhookPayload",
    "WebhookPayloadComment",
    "WebhookPayloadDiscussion",
    "WebhookPayloadDiscussionChanges",
    "WebhookPayloadEvent",
    "WebhookPayloadMovedTo",
    "WebhookPayloadRepo",
    "WebhookPayloadUpdatedRef",
    "WebhookPayloadUrl",
    "WebhookPayloadWebhook",
    "WebhooksServer",
    "__version__",
    "on",
    "schedule",
    "webhook_endpoint",
]
