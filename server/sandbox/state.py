"""The sandbox Hub's state: accounts, repos with real commit history, discussions, webhooks.

Plain data guarded by one lock; the HTTP layer (`hub.py`) reads and changes it, and every change
that the Hub would announce is handed to `on_event` (webhook delivery, see `delivery.py`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .clock import SimClock

__all__ = ["Account", "Blob", "Commit", "Discussion", "HubState", "Repo", "Webhook"]

_ids = itertools.count(1)


def object_id() -> str:
    """A 24-hex id like the Hub's."""
    return secrets.token_hex(12)


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    title: str
    message: str
    author: str
    at: float


@dataclass
class Discussion:
    num: int
    title: str
    author: str
    is_pull_request: bool
    status: str = "open"
    events: list[dict[str, Any]] = field(default_factory=list)
    pinned: bool = False
    base: str = "refs/heads/main"
    id: str = field(default_factory=object_id)


@dataclass
class Repo:
    type: str  # model | dataset | space
    namespace: str
    name: str
    private: bool
    id: str = field(default_factory=object_id)
    sdk: str | None = None
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    discussions: list[Discussion] = field(default_factory=list)

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def web_prefix(self) -> str:
        return "" if self.type == "model" else f"{self.type}s/"

    def ref_oid(self, revision: str) -> str | None:
        """A branch, tag, `refs/...` name, PR ref or commit oid -> the commit it names."""
        for prefix, table in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix):
                return table.get(revision[len(prefix) :])
        if revision.startswith("refs/pr/"):
            return self.branches.get(revision)
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        matches = (
            [oid for oid in self.commits if oid.startswith(revision)] if len(revision) >= 7 else []
        )
        return matches[0] if len(matches) == 1 else None

    def files_at(self, revision: str) -> dict[str, Blob] | None:
        oid = self.ref_oid(revision)
        return None if oid is None else self.commits[oid].files


@dataclass
class Account:
    name: str
    token: str
    orgs: list[str] = field(default_factory=list)
    id: str = field(default_factory=object_id)


@dataclass
class Webhook:
    owner: str
    url: str
    watched: list[dict[str, str]]
    domains: list[str]
    secret: str | None
    disabled: bool = False
    id: str = field(default_factory=object_id)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "watched": self.watched,
            "domains": self.domains,
            "secret": self.secret,
            "disabled": self.disabled,
        }


class HubState:
    """Everything the sandbox Hub knows. `on_event(repo, payload_parts)` announces changes."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.repos: dict[tuple[str, str], Repo] = {}  # (type, repo_id) -> Repo
        self.webhooks: dict[str, Webhook] = {}
        self.listeners: list[Callable[[Repo, dict[str, Any]], None]] = []
        #: called with (repo, create body) when a repo is created (Spaces set up their runtime)
        self.spaces_hooks: list[Callable[[Repo, dict[str, Any]], None]] = []
        #: a Space's runtime JSON, provided by the Spaces simulator
        self.space_runtime: Callable[[Repo], dict[str, Any]] | None = None

    # -- accounts ------------------------------------------------------------------------------

    def add_account(
        self, name: str, token: str | None = None, orgs: list[str] | None = None
    ) -> Account:
        account = Account(name, token or "hf_sandbox_" + secrets.token_urlsafe(24), orgs or [])
        self.accounts[name] = account
        return account

    def account_for(self, token: str | None) -> Account | None:
        if not token:
            return None
        return next(
            (a for a in self.accounts.values() if secrets.compare_digest(a.token, token)), None
        )

    def may_write(self, account: Account, namespace: str) -> bool:
        return namespace == account.name or namespace in account.orgs

    # -- repos and commits ---------------------------------------------------------------------

    def repo(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def create_repo(
        self, repo_type: str, repo_id: str, private: bool, author: str, sdk: str | None = None
    ) -> Repo:
        namespace, name = repo_id.split("/", 1)
        repo = Repo(repo_type, namespace, name, private, sdk=sdk)
        attributes = Blob(
            b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
            b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
            False,
        )
        files = {".gitattributes": attributes}
        if repo_type == "space":
            meta = f"---\ntitle: {name}\nsdk: {sdk}\napp_file: app.py\n---\n"
            files["README.md"] = Blob(meta.encode(), False)
        self.repos[(repo_type, repo_id)] = repo
        self.commit(repo, "main", files, "initial commit", "", author)
        return repo

    def commit(
        self, repo: Repo, branch: str, files: dict[str, Blob], title: str, message: str, author: str
    ) -> Commit:
        parent = repo.branches.get(branch)
        content = sorted((path, blob.etag) for path, blob in files.items())
        seed = f"{repo.id}:{parent}:{title}:{next(_ids)}:{content}"
        oid = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(oid, parent, files, title, message, author, self.clock.now())
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def announce(self, repo: Repo, parts: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(repo, parts)

    def apply_commit(
        self,
        repo: Repo,
        account: Account | None,
        revision: str,
        header: dict[str, Any],
        lines: list[dict[str, Any]],
        create_pr: bool,
        lfs_objects: dict[str, bytes],
        base: str,
    ) -> Any:
        """One NDJSON commit: the Hub's answer (a dict), or an error response."""
        from .hub import hub_error  # the HTTP shape of errors lives with the routes

        author = account.name if account else "anonymous"
        summary = str(header.get("summary") or "").strip()
        if not summary:
            return hub_error(400, "The commit summary must not be empty.")
        parent = header.get("parentCommit")
        branch = revision[len("refs/heads/") :] if revision.startswith("refs/heads/") else revision
        with self.lock:
            if branch not in repo.branches:
                return hub_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            discussion = None
            if create_pr:
                start = repo.ref_oid(parent) if parent else repo.branches[branch]
                if start is None:
                    return hub_error(404, f"Invalid parent commit {parent}", "RevisionNotFound")
                discussion = Discussion(
                    len(repo.discussions) + 1, summary, author, True, base=f"refs/heads/{branch}"
                )
                repo.discussions.append(discussion)
                branch = f"refs/pr/{discussion.num}"
                repo.branches[branch] = start
            elif parent and not repo.branches[branch].startswith(parent):
                return hub_error(
                    412,
                    "A commit has happened since. Please refresh and try again "
                    f"(the head of {revision} is no longer {parent}).",
                )
            old = repo.branches[branch]
            files = dict(repo.commits[old].files)
            known = {blob.sha256: blob.data for blob in files.values() if blob.lfs}
            for line in lines:
                key, value = line.get("key"), line.get("value") or {}
                path = str(value.get("path", "")).lstrip("/")
                if key == "file":
                    files[path] = Blob(base64.b64decode(value.get("content", "")), False)
                elif key == "lfsFile":
                    data = lfs_objects.get(value.get("oid", "")) or known.get(value.get("oid", ""))
                    if data is None:
                        return hub_error(422, f"LFS object for {path!r} was never uploaded.")
                    files[path] = Blob(data, True)
                elif key == "deletedFile":
                    if path not in files:
                        return hub_error(
                            404, "A file with this name doesn't exist", "EntryNotFound"
                        )
                    del files[path]
                elif key == "deletedFolder":
                    folder = path.rstrip("/") + "/"
                    for existing in [p for p in files if p.startswith(folder)]:
                        del files[existing]
                else:
                    return hub_error(400, f"Unknown commit line {key!r}.")
            new = self.commit(
                repo, branch, files, summary, str(header.get("description") or ""), author
            )
        url = f"{base}/{repo.web_prefix}{repo.repo_id}"
        answer: dict[str, Any] = {
            "success": True,
            "commitOid": new.oid,
            "commitUrl": f"{url}/commit/{new.oid}",
            "hookOutput": "",
        }
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        if discussion is not None:
            answer["pullRequestUrl"] = f"{url}/discussions/{discussion.num}"
            self.announce(
                repo,
                {"event": {"action": "create", "scope": "discussion"}, "discussion": discussion},
            )
        self.announce(
            repo,
            {
                "event": {"action": "update", "scope": "repo.content"},
                "updatedRefs": [
                    {"ref": ref, "oldSha": None if create_pr else old, "newSha": new.oid}
                ],
            },
        )
        return answer
