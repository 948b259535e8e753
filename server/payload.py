"""The webhook payload the Hub sends (version 3), as pydantic models.

Class and attribute names are huggingface_hub's, so handler code moves between the two unchanged
(`payload.discussion.isPullRequest`, `payload.updatedRefs`, ...). Two differences, both deliberate:

- Every model is open. Unknown scopes, actions, repo types, statuses, webhook versions and
  extra keys are accepted and kept (`model_dump(by_alias=True)` gives them back). The Hub retries
  non-2xx answers and counts them toward suspending a webhook, so a strict model would turn a
  harmless addition on the Hub's side into an outage on ours.
- `repo.head_sha` is read from the `headSha` key the Hub actually sends (huggingface_hub declares
  the field without an alias and silently drops it).

Scope matching follows the Hub's forward-compatibility rule: a narrower scope we do not know
(`repo.config.dois`) counts as an `update` on the nearest known parent (`repo.config`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KNOWN_SCOPES",
    "ObjectId",
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
    "scope_matches",
]

# The scopes the Hub documents today (hub-api.md, "Scopes").
KNOWN_SCOPES = frozenset(
    {"repo", "repo.content", "repo.config", "discussion", "discussion.comment"}
)


def scope_matches(scope: str, wanted: str) -> bool:
    """Whether an event `scope` falls under `wanted`, by whole dotted segments.

    `repo.config.dois` is under `repo.config` and under `repo`; `repository` is under neither.
    """
    return scope == wanted or scope.startswith(wanted + ".")


class _Open(BaseModel):
    """Base of every payload part: extra keys are kept, fields accept their JSON key or name."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=False)


class ObjectId(_Open):
    id: str


class WebhookPayloadUrl(_Open):
    web: str
    api: str | None = None


class WebhookPayloadMovedTo(_Open):
    name: str
    owner: ObjectId


class WebhookPayloadWebhook(ObjectId):
    # huggingface_hub pins this to 3; a future version must not be refused at the door.
    version: int


class WebhookPayloadEvent(_Open):
    action: str
    scope: str

    @property
    def effective(self) -> tuple[str, str]:
        """The (scope, action) to match on, after the Hub's forward-compatibility rule.

        A scope we do not know is treated as an `update` on its nearest known parent scope.
        """
        if self.scope in KNOWN_SCOPES:
            return self.scope, self.action
        parts = self.scope.split(".")
        for end in range(len(parts) - 1, 0, -1):
            parent = ".".join(parts[:end])
            if parent in KNOWN_SCOPES:
                return parent, "update"
        return self.scope, self.action


class WebhookPayloadDiscussionChanges(_Open):
    base: str
    mergeCommitId: str | None = None


class WebhookPayloadComment(ObjectId):
    author: ObjectId
    hidden: bool = False
    # Absent when the comment is hidden.
    content: str | None = None
    url: WebhookPayloadUrl


class WebhookPayloadDiscussion(ObjectId):
    num: int
    author: ObjectId
    url: WebhookPayloadUrl
    title: str
    isPullRequest: bool
    status: str
    changes: WebhookPayloadDiscussionChanges | None = None
    pinned: bool | None = None


class WebhookPayloadRepo(ObjectId):
    owner: ObjectId
    head_sha: str | None = Field(default=None, alias="headSha")
    name: str
    private: bool
    subdomain: str | None = None
    tags: list[str] | None = None
    type: str
    url: WebhookPayloadUrl

    @property
    def headSha(self) -> str | None:
        return self.head_sha


class WebhookPayloadUpdatedRef(_Open):
    ref: str
    # None when the ref was created (old) or deleted (new).
    oldSha: str | None = None
    newSha: str | None = None


class WebhookPayload(_Open):
    event: WebhookPayloadEvent
    repo: WebhookPayloadRepo
    discussion: WebhookPayloadDiscussion | None = None
    comment: WebhookPayloadComment | None = None
    webhook: WebhookPayloadWebhook
    movedTo: WebhookPayloadMovedTo | None = None
    updatedRefs: list[WebhookPayloadUpdatedRef] | None = None
    updatedConfig: dict[str, Any] | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The payload as the Hub sent it: JSON keys, unknown keys kept, absent keys absent."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
