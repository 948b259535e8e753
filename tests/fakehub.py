"""A loopback test server speaking enough of the Hub's protocol for the client tests.

Records every request exactly (method, path, query, body) so tests can assert what a client
sent, answers each route with a plausible body (enough for huggingface_hub's own `HfApi` to
parse it too), serves the LFS transfer endpoints itself (streaming, hashing what it receives),
and fails on demand: `fail(path_prefix, status, times, headers)`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.loopback import serve

RUNTIME = {
    "stage": "RUNNING",
    "hardware": {"current": "t4-small", "requested": "t4-small"},
    "storage": None,
    "gcTimeout": 3600,
    "replicas": {"requested": 1},
    "devMode": False,
}
WEBHOOK = {
    "id": "6390e855e30d9209411de93b",
    "url": "https://example.org/hook",
    "watched": [{"type": "user", "name": "alice"}],
    "domains": ["repo"],
    "secret": "s",
    "disabled": False,
}
NOW = "2026-11-24T10:00:00.000Z"


def endpoint_json(name: str, state: str = "running") -> dict[str, Any]:
    return {
        "name": name,
        "type": "authenticated",
        "accountId": None,
        "healthRoute": "/health",
        "provider": {"vendor": "aws", "region": "us-east-1"},
        "compute": {
            "accelerator": "gpu",
            "instanceType": "nvidia-t4",
            "instanceSize": "x1",
            "scaling": {"minReplica": 1, "maxReplica": 1},
        },
        "model": {
            "repository": "alice/model",
            "revision": "abc",
            "task": "text-generation",
            "framework": "pytorch",
            "image": {"huggingface": {}},
        },
        "status": {
            "state": state,
            "message": "ok",
            "createdAt": "2026-11-24T10:00:00.123456789Z",
            "updatedAt": NOW,
            "createdBy": {"id": "1", "name": "alice"},
            "updatedBy": {"id": "1", "name": "alice"},
            "readyReplica": 1,
            "targetReplica": 1,
        },
    }


def discussion_json(repo_id: str, num: int = 1) -> dict[str, Any]:
    return {
        "num": num,
        "title": "Hello",
        "status": "open",
        "isPullRequest": False,
        "author": {"name": "alice"},
        "createdAt": NOW,
        "repo": {"name": repo_id, "type": "model"},
        "events": [],
        "changes": {},
        "filesWithConflicts": [],
        "diff": None,
    }


def event_json(kind: str = "comment") -> dict[str, Any]:
    return {
        "id": "ev1",
        "type": kind,
        "createdAt": NOW,
        "author": {"name": "alice"},
        "data": {"latest": {"raw": "hi"}, "hidden": False, "edited": False, "status": "closed"},
    }


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Failure:
    prefix: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class FakeHub:
    """Serve on a free loopback port in a thread; `url` once started."""

    def __init__(self, *, multipart_chunk: int | None = None, lfs_threshold: int = 10_000_000):
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.lfs_threshold = lfs_threshold
        self.multipart_chunk = multipart_chunk
        self.stored: dict[str, tuple[int, str]] = {}  # lfs oid -> (size, sha256 received)
        self.url = ""
        app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])]
        )
        self._serving = serve(app)

    def __enter__(self) -> FakeHub:
        self.url = self._serving.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(*exc)

    def fail(
        self,
        prefix: str,
        status: int,
        times: int = 1,
        headers: dict | None = None,
        body: Any = None,
    ) -> None:
        self.failures.append(Failure(prefix, status, times, headers or {}, body))

    def find(self, method: str, fragment: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    async def _handle(self, request: Request) -> Response:
        path = request.scope["raw_path"].decode("latin-1")  # as sent: %2F stays encoded
        method = request.method
        if method == "PUT" and path.startswith("/lfs-storage/"):
            # Stream the upload, as a storage would: never hold it whole.
            sha, size = hashlib.sha256(), 0
            async for chunk in request.stream():
                sha.update(chunk)
                size += len(chunk)
            self.requests.append(Recorded(method, path, {}, dict(request.headers), b""))
            self.stored[path] = (size, sha.hexdigest())
            return Response(status_code=200, headers={"etag": f'"{sha.hexdigest()[:16]}"'})
        body = await request.body()
        self.requests.append(
            Recorded(method, path, parse_qs(request.url.query), dict(request.headers), body)
        )
        for failure in self.failures:
            if failure.times > 0 and path.startswith(failure.prefix):
                failure.times -= 1
                return JSONResponse(
                    failure.body or {"error": f"injected {failure.status}"},
                    status_code=failure.status,
                    headers=failure.headers,
                )
        return self._answer(method, path, body, request)

    def _answer(self, method: str, path: str, body: bytes, request: Request) -> Response:
        try:
            data = json.loads(body) if body else None
        except ValueError:  # NDJSON (a commit) or raw bytes
            data = None
        parts = path.strip("/").split("/")
        if path == "/api/whoami-v2":
            return JSONResponse({"type": "user", "name": "alice", "orgs": [{"name": "acme"}]})
        if path.startswith("/api/settings/webhooks"):
            if method == "GET" and path == "/api/settings/webhooks":
                return JSONResponse([WEBHOOK])
            if method == "DELETE":
                return JSONResponse({})
            return JSONResponse({"webhook": WEBHOOK})
        if path == "/api/repos/create":
            name = f"{data.get('organization') or 'alice'}/{data['name']}"
            prefix = "" if data.get("type", "model") == "model" else data["type"] + "s/"
            return JSONResponse({"url": f"{self.url}/{prefix}{name}", "name": name, "id": "1"})
        if path == "/api/repos/delete":
            return PlainTextResponse("OK")
        if path.startswith("/v2/endpoint/"):
            if method == "GET" and len(parts) == 3:
                return JSONResponse({"items": [endpoint_json("one")]})
            if method == "DELETE":
                return JSONResponse({})
            name = data["name"] if method == "POST" and len(parts) == 3 else parts[3]
            return JSONResponse(endpoint_json(name))
        if path.startswith("/api/spaces/") and parts[-1] in (
            "runtime",
            "hardware",
            "sleeptime",
            "pause",
            "restart",
            "storage",
        ):
            return JSONResponse(RUNTIME)
        if path.startswith("/api/spaces/") and parts[-1] == "secrets":
            return JSONResponse({})
        if path.startswith("/api/spaces/") and parts[-1] == "variables":
            return JSONResponse({"MODE": {"value": "fast", "updatedAt": NOW}})
        if path.startswith("/api/spaces/") and parts[-1] == "duplicate":
            return JSONResponse({"url": f"{self.url}/spaces/{data['repository']}"})
        if "discussions" in parts:
            repo_id = "/".join(parts[2:4])
            if parts[-1] == "discussions":
                return JSONResponse({"num": 1})
            if parts[-1] == "comment":
                return JSONResponse({"newMessage": event_json()})
            if parts[-1] == "status":
                return JSONResponse({"newStatus": event_json("status-change")})
            return JSONResponse(discussion_json(repo_id, int(parts[-1])))
        if "preupload" in parts:
            files = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if f["size"] >= self.lfs_threshold else "regular",
                    "shouldIgnore": False,
                }
                for f in data["files"]
            ]
            return JSONResponse({"files": files, "commitOid": "a" * 40})
        if path.endswith(".git/info/lfs/objects/batch"):
            return JSONResponse(
                {"transfer": "basic", "objects": [self._lfs_object(o) for o in data["objects"]]}
            )
        if path.startswith("/lfs-complete/"):
            return JSONResponse({"ok": True})
        if "commit" in parts:
            repo = "/".join(parts[1:4])
            answer = {
                "success": True,
                "commitOid": "c" * 40,
                "commitUrl": f"{self.url}/{repo}/commit/{'c' * 40}",
                "hookOutput": "",
            }
            if request.query_params.get("create_pr"):
                answer["pullRequestUrl"] = f"{self.url}/{repo}/discussions/7"
            return JSONResponse(answer)
        if "super-squash" in parts:
            return JSONResponse({"commitId": "d" * 40})
        if parts[0] == "api" and len(parts) >= 4:
            return JSONResponse(
                {
                    "id": "/".join(parts[2:4]),
                    "sha": "b" * 40,
                    "private": False,
                    "siblings": [],
                    "tags": [],
                }
            )
        return JSONResponse({"error": f"fake hub has no route {method} {path}"}, status_code=404)

    def _lfs_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        oid, size = obj["oid"], obj["size"]
        if self.multipart_chunk is None:
            upload = {"href": f"{self.url}/lfs-storage/{oid}"}
        else:
            count = -(-size // self.multipart_chunk)
            header = {str(n): f"{self.url}/lfs-storage/{oid}/part{n}" for n in range(1, count + 1)}
            header["chunk_size"] = str(self.multipart_chunk)
            upload = {"href": f"{self.url}/lfs-complete/{oid}", "header": header}
        return {"oid": oid, "size": size, "actions": {"upload": upload}}
