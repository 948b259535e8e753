"""space_pr_previews end to end on the sandbox: PRs on a Space -> webhooks -> previews created,
updated, commented, and deleted on merge or close; late and repeated events change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from handlers.space_pr_previews import COMMENT_MARKER, Config, build
from server import ConfigError
from tests.automation import running
from tests.procs import wait_until

SPACE = "demo/app"
WATCHED = [{"type": "space", "name": SPACE}]


def config(**env: str) -> Config:
    found = Config.from_env({"SPACE_PR_PREVIEWS_SPACES": SPACE, **env})
    assert found is not None
    return found


def space_files(sandbox_hub, repo_id: str) -> dict | None:
    repo = sandbox_hub.sandbox.state.repo("space", repo_id)
    return None if repo is None else sandbox_hub.files(repo_id, "space")


def open_pr(sandbox_hub, color: str) -> int:
    hub = sandbox_hub.hub
    pr = hub.create_pull_request(SPACE, f"Make it {color}", repo_type="space")
    hub.upload_file(
        path_or_fileobj=f"COLOR = {color!r}\n".encode(),
        path_in_repo="app.py",
        repo_id=SPACE,
        repo_type="space",
        revision=f"refs/pr/{pr.num}",
    )
    return pr.num


def test_configuration_is_checked_at_start() -> None:
    assert Config.from_env({}) is None
    assert config(SPACE_PR_PREVIEWS_SPACES="demo/app, demo/other").spaces == (
        "demo/app",
        "demo/other",
    )
    with pytest.raises(ConfigError, match="'app' is not a Space id"):
        config(SPACE_PR_PREVIEWS_SPACES="app")


def test_previews_follow_their_prs_through_open_push_merge_and_close(
    sandbox_hub, tmp_path: Path
) -> None:
    hub = sandbox_hub.hub
    hub.create_repo(SPACE, repo_type="space", space_sdk="gradio")
    hub.upload_file(
        path_or_fileobj=b"COLOR = 'grey'\n", path_in_repo="app.py", repo_id=SPACE, repo_type="space"
    )
    with running(sandbox_hub, build(config()), tmp_path / "db", WATCHED) as server:
        prs = {color: open_pr(sandbox_hub, color) for color in ("blue", "green", "red")}
        for color, num in prs.items():  # each PR its own private preview, at its head
            preview = f"demo/app-pr-{num}"
            wait_until(
                lambda p=preview, c=color: (
                    (space_files(sandbox_hub, p) or {}).get("app.py") == f"COLOR = {c!r}\n".encode()
                )
            )
            repo = sandbox_hub.sandbox.state.repo("space", preview)
            assert repo.private and repo.sdk == "gradio"
        server.settled()
        blue = prs["blue"]
        details = hub.get_discussion_details(SPACE, blue, repo_type="space")
        comments = [e for e in details.events if COMMENT_MARKER in str(e.raw)]
        assert len(comments) == 1 and "demo/app-pr-" in str(comments[0].raw)

        # A new push to the blue PR updates its preview (and does not comment again).
        hub.upload_file(
            path_or_fileobj=b"COLOR = 'navy'\n",
            path_in_repo="app.py",
            repo_id=SPACE,
            repo_type="space",
            revision=f"refs/pr/{blue}",
        )
        preview = f"demo/app-pr-{blue}"
        wait_until(lambda: space_files(sandbox_hub, preview)["app.py"] == b"COLOR = 'navy'\n")
        server.settled()

        # Merged and closed PRs lose their previews.
        hub.merge_pull_request(SPACE, blue, repo_type="space")
        hub.change_discussion_status(SPACE, prs["green"], "closed", repo_type="space")
        wait_until(lambda: space_files(sandbox_hub, preview) is None)
        wait_until(lambda: space_files(sandbox_hub, f"demo/app-pr-{prs['green']}") is None)
        assert space_files(sandbox_hub, f"demo/app-pr-{prs['red']}") is not None
        deliveries = server.settled()
        actions = len(server.audit())

        # Every event again, in any order, late: nothing comes back, nothing is done twice.
        for delivery in deliveries:
            requests.post(f"{server.url}/api/deliveries/{delivery['id']}/replay", timeout=10)
        wait_until(
            lambda: all(
                job["attempts"] >= 2
                for d in deliveries
                for job in server.api(f"/api/deliveries/{d['id']}")["jobs"]
            )
        )
        server.settled()
        assert space_files(sandbox_hub, preview) is None
        assert len(server.audit()) == actions
        details = hub.get_discussion_details(SPACE, prs["red"], repo_type="space")
        assert sum(COMMENT_MARKER in str(e.raw) for e in details.events) == 1
