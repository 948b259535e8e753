"""Discussions and pull requests in the sandbox: create, read, comment, change status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .hub import Access, hub_error
from .state import Discussion, HubState, Repo, object_id

__all__ = ["make_discussions_router"]


def make_discussions_router(state: HubState) -> APIRouter:
    router = APIRouter()
    access = Access(state)
    prefix = "/api/{kind}/{ns}/{name}/discussions"

    def event(kind: str, author: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": object_id(),
            "type": kind,
            "createdAt": state.clock.iso(),
            "author": {"name": author},
            "data": data,
        }

    def comment_event(author: str, text: str) -> dict[str, Any]:
        return event(
            "comment",
            author,
            {
                "edited": False,
                "hidden": False,
                "numEdits": 0,
                "latest": {"raw": text, "html": text},
            },
        )

    def details(repo: Repo, discussion: Discussion) -> dict[str, Any]:
        data: dict[str, Any] = {
            "num": discussion.num,
            "title": discussion.title,
            "status": discussion.status,
            "isPullRequest": discussion.is_pull_request,
            "author": {"name": discussion.author},
            "createdAt": discussion.events[0]["createdAt"] if discussion.events else None,
            "repo": {"name": repo.repo_id, "type": repo.type},
            "events": discussion.events,
            "pinned": discussion.pinned,
            "changes": {},
            "filesWithConflicts": [],
            "diff": "",
        }
        if discussion.is_pull_request:
            data["changes"] = {"base": discussion.base}
        return data

    def comment_payload(repo: Repo, discussion: Discussion, ev: dict[str, Any], base: str) -> Any:
        web = f"{base}/{repo.web_prefix}{repo.repo_id}/discussions/{discussion.num}#{ev['id']}"
        return {
            "id": ev["id"],
            "author": {"id": ev["author"]["name"]},
            "content": ev["data"]["latest"]["raw"],
            "hidden": False,
            "url": {"web": web},
        }

    def find(
        request: Request, kind: str, ns: str, name: str, num: int | None, write: bool
    ) -> tuple[Repo, Any, Discussion | None] | JSONResponse:
        found = access.repo(request, kind, f"{ns}/{name}", write=False)
        if isinstance(found, JSONResponse):
            return found
        repo, account = found
        if write and account is None:
            return hub_error(401, "You must be logged in to take part in discussions.")
        discussion = None
        if num is not None:
            discussion = next((d for d in repo.discussions if d.num == num), None)
            if discussion is None:
                return hub_error(404, f"Discussion #{num} not found")
        return repo, account, discussion

    @router.get(prefix)
    async def list_discussions(kind: str, ns: str, name: str, request: Request) -> Any:
        found = find(request, kind, ns, name, None, False)
        if isinstance(found, JSONResponse):
            return found
        repo = found[0]
        return {
            "discussions": [details(repo, d) for d in reversed(repo.discussions)],
            "count": len(repo.discussions),
            "start": 0,
        }

    @router.post(prefix)
    async def create(kind: str, ns: str, name: str, request: Request) -> Any:
        found = find(request, kind, ns, name, None, True)
        if isinstance(found, JSONResponse):
            return found
        repo, account, _ = found
        body = await request.json()
        if not str(body.get("title", "")).strip():
            return hub_error(400, "A discussion needs a title.")
        with state.lock:
            is_pr = bool(body.get("pullRequest"))
            discussion = Discussion(
                len(repo.discussions) + 1, body["title"].strip(), account.name, is_pr
            )
            first = comment_event(account.name, body.get("description") or "")
            discussion.events.append(first)
            repo.discussions.append(discussion)
            if is_pr:
                repo.branches[f"refs/pr/{discussion.num}"] = repo.branches["main"]
        base = str(request.base_url).rstrip("/")
        state.announce(
            repo,
            {
                "event": {"action": "create", "scope": "discussion"},
                "discussion": discussion,
                "comment": comment_payload(repo, discussion, first, base),
            },
        )
        return {
            "num": discussion.num,
            "url": f"{base}/{repo.web_prefix}{repo.repo_id}/discussions/{discussion.num}",
            "pullRequest": discussion.is_pull_request,
        }

    @router.get(prefix + "/{num}")
    async def get(kind: str, ns: str, name: str, num: int, request: Request) -> Any:
        found = find(request, kind, ns, name, num, False)
        return found if isinstance(found, JSONResponse) else details(found[0], found[2])

    @router.post(prefix + "/{num}/comment")
    async def comment(kind: str, ns: str, name: str, num: int, request: Request) -> Any:
        found = find(request, kind, ns, name, num, True)
        if isinstance(found, JSONResponse):
            return found
        repo, account, discussion = found
        text = str((await request.json()).get("comment", "")).strip()
        if not text:
            return hub_error(400, "A comment cannot be empty.")
        ev = comment_event(account.name, text)
        discussion.events.append(ev)
        base = str(request.base_url).rstrip("/")
        state.announce(
            repo,
            {
                "event": {"action": "create", "scope": "discussion.comment"},
                "discussion": discussion,
                "comment": comment_payload(repo, discussion, ev, base),
            },
        )
        return {"newMessage": ev}

    @router.post(prefix + "/{num}/status")
    async def status(kind: str, ns: str, name: str, num: int, request: Request) -> Any:
        found = find(request, kind, ns, name, num, True)
        if isinstance(found, JSONResponse):
            return found
        repo, account, discussion = found
        body = await request.json()
        if body.get("status") not in ("open", "closed"):
            return hub_error(400, "status must be open or closed.")
        discussion.status = body["status"]
        ev = event("status-change", account.name, {"status": discussion.status})
        discussion.events.append(ev)
        if body.get("comment"):
            discussion.events.append(comment_event(account.name, body["comment"]))
        state.announce(
            repo, {"event": {"action": "update", "scope": "discussion"}, "discussion": discussion}
        )
        return {"newStatus": ev}

    @router.post(prefix + "/{num}/merge")
    async def merge(kind: str, ns: str, name: str, num: int, request: Request) -> Any:
        found = find(request, kind, ns, name, num, True)
        if isinstance(found, JSONResponse):
            return found
        repo, account, discussion = found
        if not discussion.is_pull_request or discussion.status != "open":
            return hub_error(400, "Only an open pull request can be merged.")
        branch = discussion.base.removeprefix("refs/heads/")
        with state.lock:
            old = repo.branches[branch]
            files = dict(repo.commits[repo.branches[f"refs/pr/{num}"]].files)
            merged = state.commit(repo, branch, files, f"Merge PR #{num}", "", account.name)
            discussion.status = "merged"
        state.announce(
            repo, {"event": {"action": "update", "scope": "discussion"}, "discussion": discussion}
        )
        state.announce(
            repo,
            {
                "event": {"action": "update", "scope": "repo.content"},
                "updatedRefs": [{"ref": discussion.base, "oldSha": old, "newSha": merged.oid}],
            },
        )
        return {"status": "merged", "mergeCommitId": merged.oid}

    return router
