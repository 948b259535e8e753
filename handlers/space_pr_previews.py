"""space_pr_previews: a private preview Space for each pull request on a watched Space.

When a PR is opened or updated on a watched Space, a private preview Space is created (or
updated) from the PR's head on `cpu-basic`, and its URL is commented on the PR once. When the PR
is merged or closed, the preview is deleted.

Every event for a PR (the discussion's, or a push to `refs/pr/N`) reconciles that PR with what
the Hub says now (open or not, and its head), so events that arrive twice, late or out of order
converge on the right preview; a stale push never resurrects a deleted preview. Events for one
PR are handled one at a time in a process; many PRs proceed in parallel.

| variable | default | meaning |
| --- | --- | --- |
| SPACE_PR_PREVIEWS_SPACES | (off) | the watched Spaces, comma-separated, e.g. `acme/app` |
| SPACE_PR_PREVIEWS_NAMESPACE | the Space's owner | where preview Spaces are created |
| SPACE_PR_PREVIEWS_HARDWARE | cpu-basic | the previews' hardware |
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator

from server import Audit, HubClient, Router, State, WebhookPayload
from server.automations import REPO_ID, AutomationConfig, router_from_env, split_list
from server.client import CommitOperationAdd, CommitOperationDelete, NotFound

COMMENT_MARKER = "<!-- spacehooks:preview -->"


class Config(AutomationConfig):
    switch: ClassVar[str] = "SPACE_PR_PREVIEWS_SPACES"

    spaces: Annotated[tuple[str, ...], BeforeValidator(split_list)] = Field(
        alias="SPACE_PR_PREVIEWS_SPACES", min_length=1
    )
    namespace: str | None = Field(None, alias="SPACE_PR_PREVIEWS_NAMESPACE", pattern=r"^[\w.-]+$")
    hardware: str = Field("cpu-basic", alias="SPACE_PR_PREVIEWS_HARDWARE", min_length=1)

    @field_validator("spaces")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not re.match(REPO_ID, v)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a Space id; list ids such as 'acme/app'")
        return value

    def preview_of(self, space: str, num: int) -> str:
        owner, name = space.split("/", 1)
        return f"{self.namespace or owner}/{name}-pr-{num}"


def build(config: Config) -> Router:
    router = Router()
    locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    @router.on("discussion", repo_type="space", repos=config.spaces, name="space_pr_previews")
    def on_discussion(payload: WebhookPayload, hub: HubClient, audit: Audit, state: State) -> Any:
        discussion = payload.discussion
        if discussion is None or not discussion.isPullRequest:
            return {"skipped": "not a pull request"}
        return reconcile(payload.repo.name, discussion.num, hub, audit, state)

    @router.on(
        "repo.content",
        repo_type="space",
        repos=config.spaces,
        refs="refs/pr/*",
        name="space_pr_previews.push",
    )
    def on_push(payload: WebhookPayload, hub: HubClient, audit: Audit, state: State) -> Any:
        nums = {
            int(r.ref.rsplit("/", 1)[1])
            for r in payload.updatedRefs or ()
            if r.ref.startswith("refs/pr/") and r.ref.rsplit("/", 1)[1].isdigit()
        }
        return [reconcile(payload.repo.name, num, hub, audit, state) for num in sorted(nums)]

    def reconcile(space: str, num: int, hub: HubClient, audit: Audit, state: State) -> dict:
        key = f"space_pr_previews:{space}#{num}"
        with locks[key]:
            return _reconcile(space, num, key, hub, audit, state)

    def _reconcile(
        space: str, num: int, key: str, hub: HubClient, audit: Audit, state: State
    ) -> dict:
        preview = config.preview_of(space, num)
        target = f"space {preview}"
        record = state.get(key) or {"generation": 0, "status": "none"}
        pr = hub.get_discussion_details(space, num, repo_type="space")
        if pr.status != "open":
            if record["status"] == "open":
                audit.once(
                    "delete_repo",
                    target,
                    lambda: hub.delete_repo(preview, repo_type="space", missing_ok=True),
                    key=f"{key}:{record['generation']}:delete",
                    cost_per_hour=0.0,
                    detail={"pr": num, "pr_status": pr.status},
                )
                record = {**record, "status": "deleted", "generation": record["generation"] + 1}
                state.put(key, record)
            return {"pr": num, "preview": None, "pr_status": pr.status}
        head = hub.repo_info(space, repo_type="space", revision=f"refs/pr/{num}")["sha"]
        if record["status"] == "open" and record.get("head") == head:
            return {"pr": num, "preview": preview, "head": head, "unchanged": True}
        generation = record["generation"]
        if record["status"] != "open":
            sdk = hub.space_info(space).get("sdk") or "gradio"
            audit.once(
                "create_repo",
                target,
                lambda: hub.create_repo(
                    preview,
                    repo_type="space",
                    private=True,
                    space_sdk=sdk,
                    space_hardware=config.hardware,
                    exist_ok=True,
                ),
                key=f"{key}:{generation}:create",
                detail={"pr": num, "from": space, "hardware": config.hardware, "private": True},
            )
        audit.once(
            "create_commit",
            target,
            lambda: copy_head(hub, space, num, preview),
            key=f"{key}:{generation}:sync:{head}",
            detail={"pr": num, "head": head},
        )
        url = f"{hub.endpoint}/spaces/{preview}"
        audit.once(
            "comment_discussion",
            f"space {space} #{num}",
            lambda: hub.comment_discussion(
                space,
                num,
                f"{COMMENT_MARKER}\nA private preview of this PR runs at {url} "
                f"(updated on each push, deleted when the PR is merged or closed).",
                repo_type="space",
            ),
            key=f"{key}:comment",
        )
        state.put(key, {"status": "open", "head": head, "generation": generation})
        return {"pr": num, "preview": preview, "head": head}

    return router


def copy_head(hub: HubClient, space: str, num: int, preview: str) -> str:
    """Make the preview's files those of the PR's head; returns the commit id."""
    revision = f"refs/pr/{num}"
    wanted = set(hub.list_repo_files(space, repo_type="space", revision=revision))
    try:
        present = set(hub.list_repo_files(preview, repo_type="space"))
    except NotFound:
        present = set()
    operations: list[Any] = [
        CommitOperationAdd(path, hub.read_file(space, path, repo_type="space", revision=revision))
        for path in sorted(wanted)
    ]
    operations += [CommitOperationDelete(path) for path in sorted(present - wanted)]
    info = hub.create_commit(
        preview,
        operations,
        commit_message=f"Preview of {space} PR #{num}",
        repo_type="space",
    )
    return info.oid


router = router_from_env(Config, build)
