"""huggingface_hub's own client, unchanged, against the sandbox: whatever it needs, the sandbox
must do. (The Inference Endpoints base URL is a constant in huggingface_hub, not derived from
HF_ENDPOINT, so that one constant is pointed at the sandbox.)"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    hf_hub_download,
)

from server.sandbox.app import Sandbox
from tests.loopback import serve


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Sandbox, str]]:
    box = Sandbox(speed=1000)
    with serve(box.app) as url:
        box.base_url = url
        yield box, url
    box.close()


@pytest.fixture
def api(sandbox, monkeypatch) -> HfApi:
    box, url = sandbox
    monkeypatch.setattr(constants, "INFERENCE_ENDPOINTS_ENDPOINT", url + "/v2")
    warnings.simplefilter("ignore", UserWarning)  # huggingface_hub's own advisories
    return HfApi(endpoint=url, token=box.demo.token)


def test_whoami(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "demo" and me["orgs"][0]["name"] == "demo-org"


def test_bad_token_is_a_401_with_the_hubs_message(sandbox) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        HfApi(endpoint=sandbox[1], token="hf_wrong").whoami()


def test_repos_files_and_commits(api: HfApi, tmp_path: Path, sandbox, monkeypatch) -> None:
    url = api.create_repo("demo/fidelity", repo_type="dataset", private=True)
    assert url.repo_id == "demo/fidelity"
    api.create_repo("demo/fidelity", repo_type="dataset", exist_ok=True)
    api.upload_file(
        path_or_fileobj=b"a,b\n1,2\n",
        path_in_repo="data/train.csv",
        repo_id="demo/fidelity",
        repo_type="dataset",
    )
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    # The sandbox speaks LFS, not Xet: huggingface_hub uses LFS for file objects, and for paths
    # when HF_HUB_DISABLE_XET=1 (see README, "What the sandbox does not simulate").
    with open(big, "rb") as handle:
        api.upload_file(
            path_or_fileobj=handle,
            path_in_repo="weights/big.bin",
            repo_id="demo/fidelity",
            repo_type="dataset",
        )
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api.upload_file(
        path_or_fileobj=big,
        path_in_repo="weights/copy.bin",
        repo_id="demo/fidelity",
        repo_type="dataset",
    )
    api.create_commit(
        "demo/fidelity",
        repo_type="dataset",
        commit_message="tidy",
        operations=[
            CommitOperationAdd("notes.md", b"# notes"),
            CommitOperationDelete("data/train.csv"),
            CommitOperationDelete("weights/copy.bin"),
        ],
    )
    files = set(api.list_repo_files("demo/fidelity", repo_type="dataset"))
    assert files == {".gitattributes", "notes.md", "weights/big.bin"}
    path = hf_hub_download(
        "demo/fidelity",
        "weights/big.bin",
        repo_type="dataset",
        cache_dir=tmp_path / "cache",
        endpoint=sandbox[1],
        token=sandbox[0].demo.token,
    )
    assert Path(path).read_bytes() == big.read_bytes()
    notes = hf_hub_download(
        "demo/fidelity",
        "notes.md",
        repo_type="dataset",
        cache_dir=tmp_path / "cache",
        endpoint=sandbox[1],
        token=sandbox[0].demo.token,
    )
    assert Path(notes).read_text() == "# notes"


def test_space_runtime_calls(api: HfApi) -> None:
    runtime = api.get_space_runtime("demo/trainer")
    assert runtime.requested_hardware == "cpu-basic"
    runtime = api.request_space_hardware("demo/trainer", "t4-small")
    assert runtime.requested_hardware == "t4-small" and runtime.stage == "BUILDING"
    api.add_space_secret("demo/trainer", "TOKEN", "s3cret")
    assert api.pause_space("demo/trainer").stage == "PAUSED"
    assert api.restart_space("demo/trainer").stage == "BUILDING"
    copy = api.duplicate_repo("demo/trainer", "demo/trainer-copy", repo_type="space")
    assert copy.repo_id == "demo/trainer-copy"


def test_webhooks_and_discussions(api: HfApi) -> None:
    hook = api.create_webhook(
        url="http://127.0.0.1:9/hook",
        watched=[{"type": "user", "name": "demo"}],
        domains=["repo"],
        secret="abc",
    )
    assert hook.id in {w.id for w in api.list_webhooks()}
    discussion = api.create_discussion("demo/model", "Question", description="How?")
    assert discussion.num == 1 and discussion.title == "Question"
    comment = api.comment_discussion("demo/model", discussion.num, "Like this.")
    assert comment.content == "Like this."
    api.delete_webhook(hook.id)


def test_inference_endpoint_wait(api: HfApi) -> None:
    endpoint = api.get_inference_endpoint("model-endpoint", namespace="demo")
    endpoint.wait(timeout=10, refresh_every=0.05)
    assert endpoint.status == "running" and endpoint.url
