from __future__ import annotations

import base64
import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from server.client import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HubClient,
)
from tests.fakehub import FakeHub

MB = 1024 * 1024


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "weights.bin"
    with open(path, "wb") as f:
        for _ in range(25):
            f.write(os.urandom(MB))
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MB):
            h.update(chunk)
    return h.hexdigest()


def test_25_mb_lfs_upload_streams_without_holding_the_file(big_file: Path) -> None:
    with FakeHub() as hub:
        api = HubClient(hub.url, "hf_x", env={})
        tracemalloc.start()
        try:
            info = api.upload_file(
                path_or_fileobj=big_file, path_in_repo="weights.bin", repo_id="alice/model"
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    oid = sha256_of(big_file)
    assert hub.stored[f"/lfs-storage/{oid}"] == (25 * MB, oid)  # all bytes arrived, intact
    # Peak Python allocation during the whole upload (client and the in-process fake storage).
    print(f"peak traced memory {peak / MB:.2f} MiB for a {25} MiB file")
    assert peak < 5 * MB
    (commit,) = hub.find("POST", "/commit/main")
    lines = [json.loads(line) for line in commit.body.decode().splitlines()]
    assert lines[1] == {
        "key": "lfsFile",
        "value": {"path": "weights.bin", "algo": "sha256", "oid": oid, "size": 25 * MB},
    }
    assert info.oid == "c" * 40


def test_multipart_upload_sends_every_part_then_completes(big_file: Path) -> None:
    chunk = 8 * MB
    with FakeHub(multipart_chunk=chunk) as hub:
        HubClient(hub.url, "hf_x", env={}).upload_file(
            path_or_fileobj=big_file,
            path_in_repo="w.bin",
            repo_id="alice/data",
            repo_type="dataset",
        )
    oid = sha256_of(big_file)
    parts = sorted(p for p in hub.stored if p.startswith(f"/lfs-storage/{oid}/part"))
    assert parts == [f"/lfs-storage/{oid}/part{n}" for n in range(1, 5)]
    data = big_file.read_bytes()
    for n in range(1, 5):
        piece = data[(n - 1) * chunk : n * chunk]
        assert hub.stored[f"/lfs-storage/{oid}/part{n}"] == (
            len(piece),
            hashlib.sha256(piece).hexdigest(),
        )
    (complete,) = hub.find("POST", f"/lfs-complete/{oid}")
    body = complete.json()
    assert body["oid"] == oid
    assert [p["partNumber"] for p in body["parts"]] == [1, 2, 3, 4]
    assert all(p["etag"] for p in body["parts"])
    assert "authorization" not in complete.headers  # the completion URL is pre-signed
    (batch,) = hub.find("POST", "/datasets/alice/data.git/info/lfs/objects/batch")
    assert batch.json()["ref"] == {"name": "main"}
    assert batch.headers["content-type"] == "application/vnd.git-lfs+json"


def test_exact_ndjson_commit_body(tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_text("from disk")
    with FakeHub() as hub:
        info = HubClient(hub.url, "hf_x", env={}).create_commit(
            "alice/model",
            [
                CommitOperationAdd("./docs/readme.md", b"# hi"),
                CommitOperationAdd("/local.txt", tmp_path / "local.txt"),
                CommitOperationDelete("gone.txt"),
                CommitOperationDelete("old-dir/"),
            ],
            commit_message="Update docs",
            commit_description="longer",
            revision="refs/pr/3",
            parent_commit="abc12345",
            create_pr=True,
        )
    (commit,) = hub.find("POST", "/commit/")
    assert commit.path == "/api/models/alice/model/commit/refs%2Fpr%2F3"
    assert commit.query == {"create_pr": ["1"]}
    assert commit.headers["content-type"] == "application/x-ndjson"
    assert commit.body.decode() == "".join(
        json.dumps(line) + "\n"
        for line in [
            {
                "key": "header",
                "value": {
                    "summary": "Update docs",
                    "description": "longer",
                    "parentCommit": "abc12345",
                },
            },
            {
                "key": "file",
                "value": {
                    "path": "docs/readme.md",
                    "content": base64.b64encode(b"# hi").decode(),
                    "encoding": "base64",
                },
            },
            {
                "key": "file",
                "value": {
                    "path": "local.txt",
                    "content": base64.b64encode(b"from disk").decode(),
                    "encoding": "base64",
                },
            },
            {"key": "deletedFile", "value": {"path": "gone.txt"}},
            {"key": "deletedFolder", "value": {"path": "old-dir/"}},
        ]
    )
    assert info.pr_num == 7 and info.pr_revision == "refs/pr/7"
    (pre,) = hub.find("POST", "/preupload/")
    assert pre.json()["files"][0] == {
        "path": "docs/readme.md",
        "sample": base64.b64encode(b"# hi").decode(),
        "size": 4,
    }


def test_commit_post_is_never_retried() -> None:
    with FakeHub() as hub:
        hub.fail("/api/models/alice/model/commit", 503, times=1)
        with pytest.raises(Exception, match="503"):
            HubClient(hub.url, "hf_x", env={}).upload_file(
                path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/model"
            )
        assert len(hub.find("POST", "/commit/")) == 1


def test_unchanged_files_make_no_commit() -> None:
    content = b"same"
    git_oid = hashlib.sha1(b"blob 4\0" + content).hexdigest()

    class SameHub(FakeHub):
        def _answer(self, method, path, body, request):
            if "preupload" in path:
                from starlette.responses import JSONResponse

                return JSONResponse(
                    {
                        "files": [
                            {
                                "path": "a.txt",
                                "uploadMode": "regular",
                                "shouldIgnore": False,
                                "oid": git_oid,
                            }
                        ]
                    }
                )
            return super()._answer(method, path, body, request)

    with SameHub() as hub:
        info = HubClient(hub.url, "hf_x", env={}).upload_file(
            path_or_fileobj=content, path_in_repo="a.txt", repo_id="alice/model"
        )
    assert hub.find("POST", "/commit/") == []
    assert info.oid == "b" * 40  # the current head, from repo_info


def test_copy_of_a_regular_file_re_sends_its_content() -> None:
    class CopyHub(FakeHub):
        def _answer(self, method, path, body, request):
            from starlette.responses import JSONResponse, Response

            if "paths-info" in path:
                return JSONResponse([{"type": "file", "path": "src.txt", "size": 3}])
            if "/resolve/" in path:
                return Response(b"abc")
            return super()._answer(method, path, body, request)

    with CopyHub() as hub:
        HubClient(hub.url, "hf_x", env={}).create_commit(
            "alice/model", [CommitOperationCopy("src.txt", "dst.txt")], commit_message="copy"
        )
        (commit,) = hub.find("POST", "/commit/")
    lines = [json.loads(line) for line in commit.body.decode().splitlines()]
    assert lines[1] == {
        "key": "file",
        "value": {"path": "dst.txt", "content": "YWJj", "encoding": "base64"},
    }


def test_upload_folder_applies_patterns_and_path_in_repo(tmp_path: Path) -> None:
    for name in ("a.json", "b.txt", "logs/x.log", "logs/keep.json", ".git/config"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    with FakeHub() as hub:
        HubClient(hub.url, "hf_x", env={}).upload_folder(
            repo_id="alice/data",
            repo_type="dataset",
            folder_path=tmp_path,
            path_in_repo="snap",
            allow_patterns=["*.json", "*.txt"],
            ignore_patterns="logs/",
        )
        (commit,) = hub.find("POST", "/commit/")
    paths = [json.loads(line)["value"]["path"] for line in commit.body.decode().splitlines()[1:]]
    assert paths == ["snap/a.json", "snap/b.txt"]


@pytest.mark.parametrize("bad", ["../x", "a/../b", ".git/config", "", "a//b"])
def test_invalid_paths_are_refused_before_any_request(bad: str) -> None:
    with pytest.raises(ValueError, match="Invalid path"):
        CommitOperationAdd(bad, b"x")
