"""Typed objects the Hub client returns, with huggingface_hub's names and attributes.

Enums list every value known today, but fields hold plain strings: the Hub returns values the
enums do not know (stage `SLEEPING`, retired hardware names), and a client must not break on
them. The enums are `str` subclasses, so `runtime.stage == SpaceStage.RUNNING` works either way.
Every object keeps the server's JSON in `raw`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = [
    "CommitInfo",
    "DiscussionComment",
    "DiscussionWithDetails",
    "RepoUrl",
    "SpaceHardware",
    "SpaceRuntime",
    "SpaceStage",
    "SpaceStorage",
    "SpaceVariable",
    "WebhookInfo",
    "WebhookWatchedItem",
    "parse_datetime",
]


class SpaceStage(str, Enum):
    NO_APP_FILE = "NO_APP_FILE"
    CONFIG_ERROR = "CONFIG_ERROR"
    BUILDING = "BUILDING"
    BUILD_ERROR = "BUILD_ERROR"
    RUNNING = "RUNNING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    DELETING = "DELETING"
    STOPPED = "STOPPED"
    PAUSED = "PAUSED"
    SLEEPING = "SLEEPING"
    APP_STARTING = "APP_STARTING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"


#: Stages that mean the Space will not get to RUNNING without a change.
ERROR_STAGES = frozenset({"NO_APP_FILE", "CONFIG_ERROR", "BUILD_ERROR", "RUNTIME_ERROR"})


class SpaceHardware(str, Enum):
    CPU_BASIC = "cpu-basic"
    CPU_UPGRADE = "cpu-upgrade"
    ZERO_A10G = "zero-a10g"
    T4_SMALL = "t4-small"
    T4_MEDIUM = "t4-medium"
    L4X1 = "l4x1"
    L4X4 = "l4x4"
    L40SX1 = "l40sx1"
    L40SX4 = "l40sx4"
    L40SX8 = "l40sx8"
    A10G_SMALL = "a10g-small"
    A10G_LARGE = "a10g-large"
    A10G_LARGEX2 = "a10g-largex2"
    A10G_LARGEX4 = "a10g-largex4"
    A100_LARGE = "a100-large"
    A100X4 = "a100x4"
    A100X8 = "a100x8"


class SpaceStorage(str, Enum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


def parse_datetime(value: str | None) -> datetime | None:
    """An aware datetime from the Hub's ISO strings (which may carry nanoseconds)."""
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    text = _trim_fraction(text)
    return datetime.fromisoformat(text)


def _trim_fraction(text: str) -> str:
    if "." not in text:
        return text
    head, rest = text.split(".", 1)
    digits = ""
    while rest and rest[0].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    return f"{head}.{digits[:6].ljust(6, '0')}{rest}"


@dataclass(frozen=True)
class SpaceRuntime:
    """A Space's runtime: stage, hardware (current and requested), sleep time, storage."""

    stage: str
    hardware: str | None
    requested_hardware: str | None
    sleep_time: int | None
    storage: str | None
    dev_mode: bool
    volumes: list[dict[str, Any]] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpaceRuntime:
        hardware = data.get("hardware") or {}
        return cls(
            stage=data["stage"],
            hardware=hardware.get("current"),
            requested_hardware=hardware.get("requested"),
            sleep_time=data.get("gcTimeout"),
            storage=data.get("storage"),
            dev_mode=bool(data.get("devMode", False)),
            volumes=data.get("volumes"),
            raw=data,
        )

    @property
    def error_message(self) -> str | None:
        return self.raw.get("errorMessage")


@dataclass(frozen=True)
class SpaceVariable:
    key: str
    value: str
    description: str | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> SpaceVariable:
        return cls(
            key=key,
            value=data.get("value", ""),
            description=data.get("description"),
            updated_at=parse_datetime(data.get("updatedAt")),
        )


@dataclass(frozen=True)
class WebhookWatchedItem:
    type: str  # user | org | model | dataset | space
    name: str


@dataclass(frozen=True)
class WebhookInfo:
    id: str
    url: str | None
    watched: list[WebhookWatchedItem]
    domains: list[str]
    secret: str | None = field(repr=False)
    disabled: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookInfo:
        return cls(
            id=data["id"],
            url=data.get("url"),
            watched=[WebhookWatchedItem(w["type"], w["name"]) for w in data.get("watched", [])],
            domains=list(data.get("domains", [])),
            secret=data.get("secret"),
            disabled=bool(data.get("disabled", False)),
            raw=data,
        )


class RepoUrl(str):
    """The URL of a repo, with its id and type (huggingface_hub's `RepoUrl`)."""

    repo_id: str
    repo_type: str

    def __new__(cls, url: str, repo_id: str, repo_type: str) -> RepoUrl:
        obj = super().__new__(cls, url)
        obj.repo_id = repo_id
        obj.repo_type = repo_type
        return obj


@dataclass(frozen=True)
class CommitInfo:
    """What a commit created (huggingface_hub's `CommitInfo` attributes)."""

    commit_url: str
    commit_message: str
    commit_description: str
    oid: str
    pr_url: str | None = None
    repo_url: str | None = None

    @property
    def pr_num(self) -> int | None:
        if not self.pr_url:
            return None
        tail = self.pr_url.rstrip("/").rsplit("/", 1)[-1]
        return int(tail) if tail.isdigit() else None

    @property
    def pr_revision(self) -> str | None:
        return f"refs/pr/{self.pr_num}" if self.pr_num is not None else None


@dataclass(frozen=True)
class DiscussionComment:
    id: str
    type: str
    author: str
    created_at: datetime | None
    content: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiscussionComment:
        inner = data.get("data") or {}
        return cls(
            id=data.get("id", ""),
            type=data.get("type", ""),
            author=(data.get("author") or {}).get("name", "deleted"),
            created_at=parse_datetime(data.get("createdAt")),
            content=inner.get("latest", {}).get("raw") if isinstance(inner, dict) else None,
            raw=data,
        )


@dataclass(frozen=True)
class DiscussionWithDetails:
    num: int
    title: str
    status: str
    author: str
    is_pull_request: bool
    created_at: datetime | None
    repo_id: str
    repo_type: str
    target_branch: str | None
    merge_commit_oid: str | None
    events: list[DiscussionComment]
    raw: dict[str, Any] = field(repr=False)

    @property
    def git_reference(self) -> str | None:
        return f"refs/pr/{self.num}" if self.is_pull_request else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiscussionWithDetails:
        changes = data.get("changes") or {}
        repo = data.get("repo") or {}
        return cls(
            num=data["num"],
            title=data.get("title", ""),
            status=data.get("status", ""),
            author=(data.get("author") or {}).get("name", "deleted"),
            is_pull_request=bool(data.get("isPullRequest", False)),
            created_at=parse_datetime(data.get("createdAt")),
            repo_id=repo.get("name", ""),
            repo_type=repo.get("type", ""),
            target_branch=changes.get("base"),
            merge_commit_oid=changes.get("mergeCommitId"),
            events=[DiscussionComment.from_json(e) for e in data.get("events", [])],
            raw=data,
        )
