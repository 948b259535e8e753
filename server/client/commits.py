"""Commits: operations, the preupload check, LFS uploads, and the NDJSON commit call.

`create_commit` follows the Hub's protocol (hub-api.md, "Commits"):

1. preupload: the server says, per file, whether it goes inline ("regular") or through LFS,
   whether to ignore it, and the oid it already has (unchanged files are skipped);
2. LFS batch: for each large file, where to PUT it: one pre-signed URL (basic) or one per part
   (multipart, then a completion call); files are streamed from disk, never read whole;
3. one POST of newline-delimited JSON: a header, then a line per file, copy and delete.

The commit call is not retried: a lost answer plus a retry would make a second commit.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from .http import HttpClient
from .models import CommitInfo
from .operations import (
    CommitOperation,
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    FileSlice,
)

__all__ = [
    "CommitOperation",
    "CommitOperationAdd",
    "CommitOperationCopy",
    "CommitOperationDelete",
    "CommitsMixin",
]

_LFS_HEADERS = {
    "accept": "application/vnd.git-lfs+json",
    "content-type": "application/vnd.git-lfs+json",
}
_PREUPLOAD_BATCH = 256


def matches_patterns(path: str, patterns: list[str] | str | None) -> bool:
    if patterns is None:
        return True
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(fnmatch.fnmatch(path, p + "*" if p.endswith("/") else p) for p in patterns)


class CommitsMixin:
    """Commits and uploads on `HubClient`."""

    _http: HttpClient
    endpoint: str

    def _lfs_href(self: Any, href: str) -> str:
        # The Hub writes its public host into hrefs; a custom endpoint serves them itself.
        public = "https://huggingface.co"
        if self.endpoint != public and href.startswith(public):
            return self.endpoint + href[len(public) :]
        return href

    def _preupload(
        self: Any, api: str, revision: str, adds: list[CommitOperationAdd], create_pr: bool
    ) -> None:
        params = {"create_pr": "1"} if create_pr else None
        for start in range(0, len(adds), _PREUPLOAD_BATCH):
            batch = adds[start : start + _PREUPLOAD_BATCH]
            files = [
                {
                    "path": op.path_in_repo,
                    "sample": base64.b64encode(op.digest()[3]).decode(),
                    "size": op.size,
                }
                for op in batch
            ]
            answer = self._http.request(
                "POST",
                f"{api}/preupload/{quote(revision, safe='')}",
                json={"files": files},
                params=params,
                idempotent=True,
            ).json()
            by_path = {f["path"]: f for f in answer.get("files", [])}
            for op in batch:
                info = by_path.get(op.path_in_repo, {})
                # Empty files always go inline: an empty LFS upload fails at the storage.
                op.upload_mode = "regular" if op.size == 0 else info.get("uploadMode", "regular")
                op.should_ignore = bool(info.get("shouldIgnore", False))
                op.remote_oid = info.get("oid")

    def _upload_lfs(
        self: Any,
        repo_type: str,
        repo_id: str,
        revision: str,
        adds: list[CommitOperationAdd],
        create_pr: bool,
    ) -> None:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        for start in range(0, len(adds), 256):
            batch = {op.sha256: op for op in adds[start : start + 256]}
            body: dict[str, Any] = {
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": [{"oid": oid, "size": op.size} for oid, op in batch.items()],
                "hash_algo": "sha256",
            }
            if not create_pr:
                body["ref"] = {"name": revision}  # unencoded, unlike revisions in URLs
            answer = self._http.request(
                "POST",
                f"/{prefix}{repo_id}.git/info/lfs/objects/batch",
                json=body,
                headers=_LFS_HEADERS,
                idempotent=True,
            ).json()
            for obj in answer.get("objects", []):
                op = batch[obj["oid"]]
                if "error" in obj:
                    error = obj["error"]
                    raise ValueError(
                        f"LFS upload of {op.path_in_repo!r} refused: "
                        f"{error.get('code')} {error.get('message')}"
                    )
                actions = obj.get("actions") or {}
                if "upload" not in actions:
                    continue  # the storage already has this blob
                self._transfer(op, actions["upload"])
                if "verify" in actions:
                    verify = actions["verify"]
                    self._http.request(
                        "POST",
                        self._lfs_href(verify["href"]),
                        json={"oid": op.sha256, "size": op.size},
                        headers=verify.get("header") or {},
                        idempotent=True,
                    )

    def _transfer(self: Any, op: CommitOperationAdd, upload: dict[str, Any]) -> None:
        header = dict(upload.get("header") or {})
        chunk_size = header.pop("chunk_size", None)
        if chunk_size is None:
            handle = op.open()  # streamed: requests reads it in blocks
            try:
                self._http.request(
                    "PUT", self._lfs_href(upload["href"]), data=handle, auth=False, idempotent=True
                )
            finally:
                op._done_with(handle)
            return
        chunk_size = int(chunk_size)
        part_urls = sorted(((int(k), v) for k, v in header.items() if k.isdigit()))
        expected = math.ceil(op.size / chunk_size)
        if len(part_urls) != expected:
            raise ValueError(
                f"LFS multipart for {op.path_in_repo!r}: {len(part_urls)} part URLs for "
                f"{expected} parts of {chunk_size} bytes."
            )
        source = op.path_or_fileobj
        if isinstance(source, FileSlice) and source.start == 0:
            path = source.path  # parts stay within op.size, the slice's length
        elif isinstance(source, Path):
            path = source
        else:
            raise ValueError("Multipart LFS uploads stream from a file on disk; pass a path.")
        etags = []
        for number, url in part_urls:
            start = (number - 1) * chunk_size
            with FileSlice(path, start, min(chunk_size, op.size - start)) as part:
                response = self._http.request(
                    "PUT", self._lfs_href(url), data=part, auth=False, idempotent=True
                )
            etag = response.headers.get("etag", "")
            if not etag:
                raise ValueError(f"LFS part {number} of {op.path_in_repo!r} returned no ETag.")
            etags.append({"partNumber": number, "etag": etag})
        self._http.request(
            "POST",
            self._lfs_href(upload["href"]),
            json={"oid": op.sha256, "parts": etags},
            headers=_LFS_HEADERS,
            auth=False,
            idempotent=True,
        )

    def _copy_lines(
        self: Any,
        api: str,
        repo_type: str,
        repo_id: str,
        revision: str,
        copies: list[CommitOperationCopy],
    ) -> list[dict[str, Any]]:
        lines = []
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        for op in copies:
            rev = op.src_revision or revision
            info = self._http.request(
                "POST",
                f"{api}/paths-info/{quote(rev, safe='')}",
                json={"paths": [op.src_path_in_repo], "expand": True},
                idempotent=True,
            ).json()
            if not info:
                raise ValueError(f"Cannot copy {op.src_path_in_repo!r}: not in {repo_id}@{rev}.")
            lfs = info[0].get("lfs")
            if lfs:
                lines.append(
                    {
                        "key": "lfsFile",
                        "value": {"path": op.path_in_repo, "algo": "sha256", "oid": lfs["oid"]},
                    }
                )
            else:
                content = self._http.request(
                    "GET", f"/{prefix}{repo_id}/resolve/{quote(rev, safe='')}/{op.src_path_in_repo}"
                ).content
                lines.append(
                    {
                        "key": "file",
                        "value": {
                            "path": op.path_in_repo,
                            "content": base64.b64encode(content).decode(),
                            "encoding": "base64",
                        },
                    }
                )
        return lines

    def create_commit(
        self: Any,
        repo_id: str,
        operations: Iterable[CommitOperation],
        *,
        commit_message: str,
        commit_description: str | None = None,
        revision: str | None = None,
        repo_type: str | None = None,
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> CommitInfo:
        """Commit `operations` in one commit (or a PR with `create_pr`)."""
        if not commit_message or not commit_message.strip():
            raise ValueError("commit_message must not be empty.")
        repo_type = repo_type or "model"
        revision = revision or "main"
        api = f"/api/{repo_type}s/{repo_id}"
        ops = list(operations)
        adds = [op for op in ops if isinstance(op, CommitOperationAdd)]
        self._preupload(api, revision, adds, create_pr)
        adds = [op for op in adds if not op.should_ignore and not op.unchanged]
        others = [op for op in ops if not isinstance(op, CommitOperationAdd)]
        if not adds and not others:
            head = self.repo_info(repo_id, repo_type=repo_type, revision=revision)["sha"]
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            return CommitInfo(
                commit_url=f"{self.endpoint}/{prefix}{repo_id}/commit/{head}",
                commit_message=commit_message,
                commit_description=commit_description or "",
                oid=head,
                repo_url=f"{self.endpoint}/{prefix}{repo_id}",
            )
        lfs = [op for op in adds if op.upload_mode == "lfs"]
        if lfs:
            self._upload_lfs(repo_type, repo_id, revision, lfs, create_pr)
        header: dict[str, Any] = {
            "summary": commit_message.strip(),
            "description": commit_description or "",
        }
        if parent_commit is not None:
            header["parentCommit"] = parent_commit
        lines: list[dict[str, Any]] = [{"key": "header", "value": header}]
        for op in adds:
            if op.upload_mode == "lfs":
                lines.append(
                    {
                        "key": "lfsFile",
                        "value": {
                            "path": op.path_in_repo,
                            "algo": "sha256",
                            "oid": op.sha256,
                            "size": op.size,
                        },
                    }
                )
            else:
                content = base64.b64encode(op.read_all()).decode()
                lines.append(
                    {
                        "key": "file",
                        "value": {
                            "path": op.path_in_repo,
                            "content": content,
                            "encoding": "base64",
                        },
                    }
                )
        for op in others:
            if isinstance(op, CommitOperationDelete):
                if op.is_folder:  # the Hub's folder deletes keep the trailing slash
                    line = {"key": "deletedFolder", "value": {"path": op.path_in_repo + "/"}}
                else:
                    line = {"key": "deletedFile", "value": {"path": op.path_in_repo}}
                lines.append(line)
        copies = [op for op in others if isinstance(op, CommitOperationCopy)]
        lines += self._copy_lines(api, repo_type, repo_id, revision, copies)
        body = "".join(json.dumps(line) + "\n" for line in lines).encode()
        answer = self._http.request(
            "POST",
            f"{api}/commit/{quote(revision, safe='')}",
            data=body,
            headers={"content-type": "application/x-ndjson"},
            params={"create_pr": "1"} if create_pr else None,
        ).json()
        url = answer["commitUrl"]
        return CommitInfo(
            commit_url=url,
            commit_message=commit_message,
            commit_description=commit_description or "",
            oid=answer["commitOid"],
            pr_url=answer.get("pullRequestUrl"),
            repo_url=url.split("/commit/")[0],
        )

    def upload_file(
        self: Any,
        *,
        path_or_fileobj: str | Path | bytes | BinaryIO,
        path_in_repo: str,
        repo_id: str,
        repo_type: str | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        create_pr: bool = False,
        parent_commit: str | None = None,
    ) -> CommitInfo:
        return self.create_commit(
            repo_id,
            [CommitOperationAdd(path_in_repo, path_or_fileobj)],
            commit_message=commit_message or f"Upload {path_in_repo} with spacehooks",
            commit_description=commit_description,
            revision=revision,
            repo_type=repo_type,
            create_pr=create_pr,
            parent_commit=parent_commit,
        )

    def list_repo_files(
        self: Any, repo_id: str, *, repo_type: str | None = None, revision: str | None = None
    ) -> list[str]:
        """Every file path in the repo at `revision` (follows the listing's pages)."""
        repo_type = repo_type or "model"
        rev = quote(revision or "main", safe="")
        url: str | None = f"/api/{repo_type}s/{repo_id}/tree/{rev}"
        params: dict[str, str] | None = {"recursive": "true"}
        files: list[str] = []
        while url:
            response = self._http.request("GET", url, params=params)
            files += [e["path"] for e in response.json() if e.get("type") == "file"]
            url, params = response.links.get("next", {}).get("url"), None
        return files

    def read_file(
        self: Any,
        repo_id: str,
        path_in_repo: str,
        *,
        repo_type: str | None = None,
        revision: str | None = None,
    ) -> bytes:
        """One file's content at `revision` (LFS files included), in memory: for small files
        such as a Space's code; large weights belong in a download to disk."""
        prefix = "" if (repo_type or "model") == "model" else f"{repo_type}s/"
        rev = quote(revision or "main", safe="")
        url = f"/{prefix}{repo_id}/resolve/{rev}/{quote(path_in_repo)}"
        return bytes(self._http.request("GET", url).content)

    def upload_folder(
        self: Any,
        *,
        repo_id: str,
        folder_path: str | Path,
        path_in_repo: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        repo_type: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        parent_commit: str | None = None,
        allow_patterns: list[str] | str | None = None,
        ignore_patterns: list[str] | str | None = None,
        delete_patterns: list[str] | str | None = None,
    ) -> CommitInfo:
        """Upload a folder's files (filtered by patterns) in one commit; with `delete_patterns`,
        also delete remote files under `path_in_repo` that match and were not uploaded."""
        root = Path(folder_path)
        if not root.is_dir():
            raise ValueError(f"{str(folder_path)!r} is not a folder.")
        base = (path_in_repo or "").strip("/")
        adds: list[CommitOperation] = []
        for directory, _, names in os.walk(root):
            for name in sorted(names):
                local = Path(directory) / name
                relative = local.relative_to(root).as_posix()
                if relative.startswith(".git/") or relative.startswith(".cache/huggingface/"):
                    continue
                if not matches_patterns(relative, allow_patterns):
                    continue
                if ignore_patterns is not None and matches_patterns(relative, ignore_patterns):
                    continue
                adds.append(CommitOperationAdd(f"{base}/{relative}" if base else relative, local))
        deletes: list[CommitOperation] = []
        if delete_patterns is not None:
            uploaded = {op.path_in_repo for op in adds}
            for remote in self.list_repo_files(repo_id, repo_type=repo_type, revision=revision):
                inside = (
                    remote[len(base) + 1 :]
                    if base and remote.startswith(base + "/")
                    else (remote if not base else None)
                )
                if inside is None or remote in uploaded or remote.endswith(".gitattributes"):
                    continue
                if matches_patterns(inside, delete_patterns):
                    deletes.append(CommitOperationDelete(remote))
        return self.create_commit(
            repo_id,
            adds + deletes,
            commit_message=commit_message or "Upload folder using spacehooks",
            commit_description=commit_description,
            revision=revision,
            repo_type=repo_type,
            create_pr=create_pr,
            parent_commit=parent_commit,
        )

    def super_squash_history(
        self: Any,
        repo_id: str,
        *,
        branch: str | None = None,
        commit_message: str | None = None,
        repo_type: str | None = None,
    ) -> None:
        branch = branch or "main"
        message = commit_message or f"Super-squash branch '{branch}' using spacehooks"
        self._http.request(
            "POST",
            f"/api/{repo_type or 'model'}s/{repo_id}/super-squash/{quote(branch, safe='')}",
            json={"message": message},
        )
