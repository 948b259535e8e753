"""The sandbox Hub's HTTP API: identity, repos, commits, files, refs (hub-api.md 1, 5, 6).

Answers as the Hub does, error headers included, so that huggingface_hub's own client works
against it unchanged (tests/test_sandbox_fidelity.py is the proof).
"""

from __future__ import annotations

import base64
import copy
import html
import json
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from .state import Account, HubState, Repo

__all__ = ["hub_error", "make_hub_router", "repo_payload"]

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
LFS_THRESHOLD = 10 * 1024 * 1024  # files this large go through LFS, as on the Hub


def hub_error(status: int, message: str, code: str | None = None) -> JSONResponse:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def repo_payload(state: HubState, repo: Repo, base: str) -> dict[str, Any]:
    """The `repo` object of a webhook payload."""
    api_kind = f"{repo.type}s"
    payload: dict[str, Any] = {
        "type": repo.type,
        "name": repo.repo_id,
        "id": repo.id,
        "private": repo.private,
        "url": {
            "web": f"{base}/{repo.web_prefix}{repo.repo_id}",
            "api": f"{base}/api/{api_kind}/{repo.repo_id}",
        },
        "owner": {
            "id": state.accounts[repo.namespace].id
            if repo.namespace in state.accounts
            else repo.namespace
        },
    }
    if repo.type == "space":
        payload["subdomain"] = f"{repo.namespace}-{repo.name}".lower().replace("_", "-")
    return payload


class Access:
    """Resolves the caller and the repo, and answers the Hub's errors for both."""

    def __init__(self, state: HubState) -> None:
        self.state = state

    def account(self, request: Request) -> Account | JSONResponse | None:
        header = request.headers.get("authorization", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        account = self.state.account_for(token.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            return hub_error(401, "Invalid credentials in Authorization header")
        return account

    def required(self, request: Request) -> Account | JSONResponse:
        account = self.account(request)
        if account is None:
            return hub_error(401, "You must be logged in: send Authorization: Bearer <token>.")
        return account

    def repo(
        self, request: Request, kind: str, repo_id: str, *, write: bool = False
    ) -> tuple[Repo, Account | None] | JSONResponse:
        account = self.account(request)
        if isinstance(account, JSONResponse):
            return account
        repo_type = TYPES.get(kind)
        repo = self.state.repo(repo_type, repo_id) if repo_type else None
        visible = repo is not None and (
            not repo.private
            or (account is not None and self.state.may_write(account, repo.namespace))
        )
        if not visible:
            status = 404 if account is not None else 401
            return hub_error(status, "Repository not found", "RepoNotFound")
        if write and (account is None or not self.state.may_write(account, repo.namespace)):
            return hub_error(403, f"You don't have the rights to write to {repo_id}.")
        return repo, account


def make_hub_router(state: HubState) -> APIRouter:
    router = APIRouter()
    access = Access(state)
    lfs_objects: dict[str, bytes] = {}

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @router.get("/api/whoami-v2")
    async def whoami(request: Request) -> Any:
        account = access.required(request)
        if isinstance(account, JSONResponse):
            return account
        return {
            "type": "user",
            "id": account.id,
            "name": account.name,
            "fullname": account.name,
            "email": f"{account.name}@sandbox.invalid",
            "emailVerified": True,
            "avatarUrl": f"{base(request)}/avatars/{account.name}.svg",
            "isPro": False,
            "canPay": False,
            "orgs": [{"name": org, "fullname": org} for org in account.orgs],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": "sandbox", "role": "write"},
            },
        }

    @router.get("/avatars/{name}.svg")
    async def avatar(name: str) -> Response:
        initial = html.escape((name[:1] or "?").upper())
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
            '<circle cx="32" cy="32" r="32" fill="#ffd21e"/>'
            f'<text x="32" y="42" font-size="28" text-anchor="middle">{initial}</text></svg>'
        )
        return Response(svg, media_type="image/svg+xml")

    @router.post("/api/repos/create")
    async def create_repo(request: Request) -> Any:
        account = access.required(request)
        if isinstance(account, JSONResponse):
            return account
        body = await request.json()
        repo_type = body.get("type") or "model"
        namespace = body.get("organization") or account.name
        if repo_type not in TYPES.values():
            return hub_error(400, f"Invalid repo type {repo_type!r}.")
        if not state.may_write(account, namespace):
            return hub_error(403, f"You don't have the rights to create a repo under {namespace}.")
        repo_id = f"{namespace}/{body.get('name', '')}"
        if not body.get("name"):
            return hub_error(400, "A repo name is required.")
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{base(request)}/{prefix}{repo_id}"
        if state.repo(repo_type, repo_id) is not None:
            return JSONResponse(
                {"error": f"You already created this {repo_type} repo", "url": url}, status_code=409
            )
        if repo_type == "space" and body.get("sdk") not in (
            "gradio",
            "streamlit",
            "docker",
            "static",
        ):
            return hub_error(400, "sdk is required for a Space: gradio, streamlit, docker, static.")
        private = body.get("visibility") == "private" or bool(body.get("private"))
        with state.lock:
            repo = state.create_repo(repo_type, repo_id, private, account.name, body.get("sdk"))
            for hook in state.spaces_hooks:
                hook(repo, body)
        state.announce(repo, {"event": {"action": "create", "scope": "repo"}})
        return {"url": url, "name": repo_id, "id": repo.id}

    @router.delete("/api/repos/delete")
    async def delete_repo(request: Request) -> Any:
        account = access.required(request)
        if isinstance(account, JSONResponse):
            return account
        body = await request.json()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or account.name}/{body.get('name', '')}"
        found = access.repo(request, f"{repo_type}s", repo_id, write=True)
        if isinstance(found, JSONResponse):
            return found
        repo, _ = found
        with state.lock:
            del state.repos[(repo_type, repo_id)]
        state.announce(repo, {"event": {"action": "delete", "scope": "repo"}})
        return PlainTextResponse("OK")

    @router.post("/api/repos/move")
    async def move_repo(request: Request) -> Any:
        body = await request.json()
        repo_type = body.get("type") or "model"
        source, target = body.get("fromRepo", ""), body.get("toRepo", "")
        found = access.repo(request, f"{repo_type}s", source, write=True)
        if isinstance(found, JSONResponse):
            return found
        repo, account = found
        namespace, _, new_name = target.partition("/")
        if not new_name or account is None or not state.may_write(account, namespace):
            return hub_error(
                400,
                f"Cannot move {source} to {target!r}: expected a namespace/name you can write to.",
            )
        if state.repo(repo_type, target) is not None:
            return hub_error(409, f"{target} already exists.")
        with state.lock:
            del state.repos[(repo_type, source)]
            repo.namespace, repo.name = namespace, new_name
            state.repos[(repo_type, target)] = repo
        owner = state.accounts[namespace].id if namespace in state.accounts else namespace
        # The Hub announces the move on the repo under its old name, pointing at the new one.
        old = copy.copy(repo)
        old.namespace, old.name = source.split("/", 1)
        state.announce(
            old,
            {
                "event": {"action": "move", "scope": "repo"},
                "movedTo": {"name": target, "owner": {"id": owner}},
            },
        )
        return {}

    @router.put("/api/{kind}/{ns}/{name}/settings")
    async def settings(kind: str, ns: str, name: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}", write=True)
        if isinstance(found, JSONResponse):
            return found
        repo, _ = found
        body = await request.json()
        changed: dict[str, Any] = {}
        if "visibility" in body or "private" in body:
            repo.private = body.get("visibility") == "private" or bool(body.get("private"))
            changed["private"] = repo.private
        state.announce(
            repo, {"event": {"action": "update", "scope": "repo.config"}, "updatedConfig": changed}
        )
        return {}

    def info(request: Request, repo: Repo, revision: str) -> Any:
        oid = repo.ref_oid(revision)
        if oid is None:
            return hub_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        commit = repo.commits[oid]
        data: dict[str, Any] = {
            "_id": repo.id,
            "id": repo.repo_id,
            "author": repo.namespace,
            "sha": oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "tags": [],
            "lastModified": state.clock.iso(commit.at),
            "createdAt": state.clock.iso(0),
            "siblings": [{"rfilename": p, "size": b.size} for p, b in sorted(commit.files.items())],
            "likes": 0,
            "downloads": 0,
        }
        if repo.type == "space":
            data.update(
                sdk=repo.sdk,
                subdomain=f"{repo.namespace}-{repo.name}".lower(),
                runtime=state.space_runtime(repo) if state.space_runtime else None,
            )
        return data

    @router.get("/api/{kind}/{ns}/{name}")
    async def repo_info(kind: str, ns: str, name: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}")
        return found if isinstance(found, JSONResponse) else info(request, found[0], "main")

    @router.get("/api/{kind}/{ns}/{name}/revision/{revision:path}")
    async def repo_info_at(kind: str, ns: str, name: str, revision: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}")
        return found if isinstance(found, JSONResponse) else info(request, found[0], revision)

    @router.get("/api/{kind}/{ns}/{name}/refs")
    async def refs(kind: str, ns: str, name: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}")
        if isinstance(found, JSONResponse):
            return found
        repo = found[0]
        ref = lambda prefix, n, oid: {"name": n, "ref": prefix + n, "targetCommit": oid}  # noqa: E731
        return {
            "branches": [
                ref("refs/heads/", b, o)
                for b, o in repo.branches.items()
                if not b.startswith("refs/")
            ],
            "tags": [ref("refs/tags/", t, o) for t, o in repo.tags.items()],
            "converts": [],
            "pullRequests": [
                {"name": b, "ref": b, "targetCommit": o}
                for b, o in repo.branches.items()
                if b.startswith("refs/pr/")
            ],
        }

    @router.post("/api/{kind}/{ns}/{name}/branch/{branch:path}")
    async def create_branch(kind: str, ns: str, name: str, branch: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}", write=True)
        if isinstance(found, JSONResponse):
            return found
        repo = found[0]
        body = await request.json() if await request.body() else {}
        start = repo.ref_oid(body.get("startingPoint") or "main")
        if start is None:
            return hub_error(404, "Invalid starting point", "RevisionNotFound")
        if branch in repo.branches:
            return hub_error(409, f"Branch {branch} already exists.")
        old = None
        repo.branches[branch] = start
        state.announce(
            repo,
            {
                "event": {"action": "update", "scope": "repo.content"},
                "updatedRefs": [{"ref": f"refs/heads/{branch}", "oldSha": old, "newSha": start}],
            },
        )
        return {}

    def tree_entries(repo: Repo, revision: str, prefix: str, recursive: bool) -> Any:
        files = repo.files_at(revision)
        if files is None:
            return hub_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        prefix = prefix.strip("/")
        entries, folders = [], set()
        for path, blob in sorted(files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            if not recursive and "/" in rest:
                folders.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                continue
            for i in range(1, rest.count("/") + 1) if recursive else ():
                folders.add((prefix + "/" if prefix else "") + "/".join(rest.split("/")[:i]))
            entry: dict[str, Any] = {
                "type": "file",
                "oid": blob.git_oid,
                "size": blob.size,
                "path": path,
            }
            if blob.lfs:
                entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
            entries.append(entry)
        dirs = [
            {"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(folders)
        ]
        return dirs + entries

    @router.get("/api/{kind}/{ns}/{name}/tree/{rest:path}")
    async def tree(
        kind: str, ns: str, name: str, rest: str, request: Request, recursive: bool = False
    ) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}")
        if isinstance(found, JSONResponse):
            return found
        raw = request.scope["raw_path"].decode("latin-1").split("/tree/", 1)[1]
        revision, _, path = raw.partition("/")
        return tree_entries(found[0], unquote(revision), unquote(path), recursive)

    @router.post("/api/{kind}/{ns}/{name}/paths-info/{revision:path}")
    async def paths_info(kind: str, ns: str, name: str, revision: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}")
        if isinstance(found, JSONResponse):
            return found
        files = found[0].files_at(revision)
        if files is None:
            return hub_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        form = await request.form() if "form" in request.headers.get("content-type", "") else None
        wanted = (
            list(form.getlist("paths"))
            if form is not None
            else (await request.json()).get("paths", [])
        )
        out = []
        for path in wanted:
            blob = files.get(str(path))
            if blob is not None:
                entry: dict[str, Any] = {
                    "type": "file",
                    "path": path,
                    "oid": blob.git_oid,
                    "size": blob.size,
                }
                if blob.lfs:
                    entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
                out.append(entry)
        return out

    async def resolve(request: Request) -> Response:
        # /{prefix}{ns}/{name}/resolve/{rev}/{path}: the revision is percent-encoded, so split
        # the raw path rather than the decoded one.
        raw = request.scope["raw_path"].decode("latin-1")
        head, _, rest = raw.partition("/resolve/")
        parts = head.strip("/").split("/")
        kind = parts[0] if parts[0] in ("datasets", "spaces") else "models"
        repo_id = "/".join(parts[-2:])
        revision, _, path = rest.partition("/")
        found = access.repo(request, kind, unquote(repo_id))
        if isinstance(found, JSONResponse):
            return found
        repo = found[0]
        revision, path = unquote(revision), unquote(path)
        oid = repo.ref_oid(revision)
        if oid is None:
            return hub_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        blob = repo.commits[oid].files.get(path)
        if blob is None:
            return hub_error(404, "Entry not found", "EntryNotFound")
        headers = {
            "X-Repo-Commit": oid,
            "ETag": f'"{blob.etag}"',
            "Content-Length": str(blob.size),
            "Accept-Ranges": "bytes",
        }
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        return Response(blob.data, headers=headers, media_type="application/octet-stream")

    for prefix in ("", "/datasets", "/spaces"):
        router.add_api_route(
            prefix + "/{ns}/{name}/resolve/{rest:path}",
            resolve,
            methods=["GET", "HEAD"],
            include_in_schema=False,
        )

    # -- commits -------------------------------------------------------------------------------

    @router.post("/api/{kind}/{ns}/{name}/preupload/{revision:path}")
    async def preupload(kind: str, ns: str, name: str, revision: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}", write=True)
        if isinstance(found, JSONResponse):
            return found
        repo = found[0]
        files = repo.files_at(revision) or {}
        out = []
        for item in (await request.json()).get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            size = int(item.get("size", 0))
            lfs = (
                size >= LFS_THRESHOLD
                or b"\0" in sample
                or item["path"].endswith((".bin", ".safetensors"))
            )
            entry: dict[str, Any] = {
                "path": item["path"],
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": False,
            }
            existing = files.get(item["path"])
            if existing is not None:
                entry["oid"] = existing.etag
            out.append(entry)
        return {"files": out, "commitOid": repo.ref_oid(revision)}

    @router.post("/{ns}/{name}.git/info/lfs/objects/batch")
    @router.post("/{kind}/{ns}/{name}.git/info/lfs/objects/batch")
    async def lfs_batch(ns: str, name: str, request: Request, kind: str = "models") -> Any:
        found = access.repo(request, kind, f"{ns}/{name}", write=True)
        if isinstance(found, JSONResponse):
            return found
        body = await request.json()
        objects = []
        for obj in body.get("objects", []):
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{base(request)}/_sandbox/lfs/{obj['oid']}"}
                }
            objects.append(entry)
        return JSONResponse(
            {"transfer": "basic", "objects": objects}, media_type="application/vnd.git-lfs+json"
        )

    @router.put("/_sandbox/lfs/{oid}", include_in_schema=False)
    async def lfs_upload(oid: str, request: Request) -> Any:
        data = await request.body()
        import hashlib

        if hashlib.sha256(data).hexdigest() != oid:
            return hub_error(400, "Uploaded content does not match its oid.")
        lfs_objects[oid] = data
        return Response(status_code=200, headers={"ETag": f'"{oid}"'})

    @router.post("/api/{kind}/{ns}/{name}/commit/{revision:path}")
    async def commit(kind: str, ns: str, name: str, revision: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}", write=True)
        if isinstance(found, JSONResponse):
            return found
        repo, account = found
        try:
            lines = [
                json.loads(line)
                for line in (await request.body()).decode().splitlines()
                if line.strip()
            ]
        except ValueError:
            return hub_error(400, "The commit body must be newline-delimited JSON.")
        if not lines or lines[0].get("key") != "header":
            return hub_error(400, "The first line of a commit must be its header.")
        header = lines[0]["value"]
        create_pr = request.query_params.get("create_pr") in ("1", "true", "True")
        return state.apply_commit(
            repo, account, revision, header, lines[1:], create_pr, lfs_objects, base(request)
        )

    @router.post("/api/{kind}/{ns}/{name}/super-squash/{branch:path}")
    async def super_squash(kind: str, ns: str, name: str, branch: str, request: Request) -> Any:
        found = access.repo(request, kind, f"{ns}/{name}", write=True)
        if isinstance(found, JSONResponse):
            return found
        repo, account = found
        if branch not in repo.branches:
            return hub_error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        files = repo.commits[repo.branches[branch]].files
        message = (await request.json()).get("message", "Super-squash")
        with state.lock:
            repo.branches.pop(branch)
            squashed = state.commit(repo, branch, dict(files), message, "", account.name)
        return {"commitId": squashed.oid}

    return router
