"""For each operation huggingface_hub also has, our request must be the one `HfApi` sends.

Both clients call the same loopback recorder; the test compares method, path, query and body
(JSON, or each NDJSON line). The calls are written once and run against both clients, which is
itself the check that the method names and parameters match.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from huggingface_hub import CommitOperationAdd as HfAdd
from huggingface_hub import CommitOperationDelete as HfDelete
from huggingface_hub import HfApi, constants

from server.client import CommitOperationAdd, CommitOperationDelete, HubClient
from tests.fakehub import FakeHub, Recorded

E = "alice"  # namespace of the endpoints


def commit_ops(lib: str) -> list[Any]:
    add, delete = (HfAdd, HfDelete) if lib == "hf" else (CommitOperationAdd, CommitOperationDelete)
    return [
        add(path_in_repo="data/a.txt", path_or_fileobj=b"hello"),
        add(path_in_repo="empty.txt", path_or_fileobj=b""),
        delete(path_in_repo="old.txt"),
        delete(path_in_repo="stale/"),
    ]


CALLS: dict[str, Callable[[Any, str], Any]] = {
    "whoami": lambda api, lib: api.whoami(),
    "get_space_runtime": lambda api, lib: api.get_space_runtime("alice/space"),
    "request_space_hardware": lambda api, lib: api.request_space_hardware(
        "alice/space", "t4-medium", sleep_time=3600
    ),
    "set_space_sleep_time": lambda api, lib: api.set_space_sleep_time("alice/space", 600),
    "pause_space": lambda api, lib: api.pause_space("alice/space"),
    "restart_space": lambda api, lib: api.restart_space("alice/space"),
    "restart_space(factory)": lambda api, lib: api.restart_space(
        "alice/space", factory_reboot=True
    ),
    "add_space_secret": lambda api, lib: api.add_space_secret(
        "alice/space", "TOKEN", "v", description="d"
    ),
    "delete_space_secret": lambda api, lib: api.delete_space_secret("alice/space", "TOKEN"),
    "get_space_variables": lambda api, lib: api.get_space_variables("alice/space"),
    "add_space_variable": lambda api, lib: api.add_space_variable("alice/space", "MODE", "fast"),
    "delete_space_variable": lambda api, lib: api.delete_space_variable("alice/space", "MODE"),
    "space_info": lambda api, lib: api.space_info("alice/space"),
    "get_inference_endpoint": lambda api, lib: api.get_inference_endpoint("ep", namespace=E),
    "list_inference_endpoints": lambda api, lib: api.list_inference_endpoints(namespace=E),
    "create_inference_endpoint": lambda api, lib: api.create_inference_endpoint(
        "ep",
        repository="alice/model",
        framework="pytorch",
        accelerator="gpu",
        instance_size="x1",
        instance_type="nvidia-t4",
        region="us-east-1",
        vendor="aws",
        min_replica=0,
        max_replica=2,
        scale_to_zero_timeout=15,
        revision="abc",
        task="text-generation",
        namespace=E,
    ),
    "update_inference_endpoint": lambda api, lib: api.update_inference_endpoint(
        "ep", revision="def", min_replica=0, scale_to_zero_timeout=30, namespace=E
    ),
    "pause_inference_endpoint": lambda api, lib: api.pause_inference_endpoint("ep", namespace=E),
    "resume_inference_endpoint": lambda api, lib: api.resume_inference_endpoint("ep", namespace=E),
    "scale_to_zero_inference_endpoint": lambda api, lib: api.scale_to_zero_inference_endpoint(
        "ep", namespace=E
    ),
    "delete_inference_endpoint": lambda api, lib: api.delete_inference_endpoint("ep", namespace=E),
    "create_webhook": lambda api, lib: api.create_webhook(
        url="https://example.org/hook",
        watched=[{"type": "user", "name": "alice"}],
        domains=["repo"],
        secret="s",
    ),
    "list_webhooks": lambda api, lib: api.list_webhooks(),
    "get_webhook": lambda api, lib: api.get_webhook("6390e855e30d9209411de93b"),
    "update_webhook": lambda api, lib: api.update_webhook(
        "6390e855e30d9209411de93b",
        url="https://example.org/new",
        watched=[{"type": "org", "name": "acme"}],
        domains=["repo", "discussion"],
    ),
    "enable_webhook": lambda api, lib: api.enable_webhook("6390e855e30d9209411de93b"),
    "disable_webhook": lambda api, lib: api.disable_webhook("6390e855e30d9209411de93b"),
    "delete_webhook": lambda api, lib: api.delete_webhook("6390e855e30d9209411de93b"),
    "create_repo(dataset, private)": lambda api, lib: api.create_repo(
        "alice/data", repo_type="dataset", private=True
    ),
    "create_repo(space)": lambda api, lib: api.create_repo(
        "acme/app",
        repo_type="space",
        space_sdk="gradio",
        space_hardware="t4-small",
        space_sleep_time=300,
    ),
    "repo_info": lambda api, lib: api.repo_info("alice/model", revision="refs/pr/1"),
    "delete_repo": lambda api, lib: api.delete_repo("alice/data", repo_type="dataset"),
    "create_commit": lambda api, lib: api.create_commit(
        "alice/data",
        commit_ops(lib),
        commit_message="Add data",
        commit_description="why",
        repo_type="dataset",
        revision="dev",
        parent_commit="a" * 40,
    ),
    "create_commit(pr)": lambda api, lib: api.create_commit(
        "alice/model", commit_ops(lib)[:1], commit_message="Propose", create_pr=True
    ),
    "upload_file": lambda api, lib: api.upload_file(
        path_or_fileobj=b"{}",
        path_in_repo="config.json",
        repo_id="alice/model",
        commit_message="Upload config.json",
    ),
    "super_squash_history": lambda api, lib: api.super_squash_history(
        "alice/model", branch="main", commit_message="squash"
    ),
    "create_discussion": lambda api, lib: api.create_discussion(
        "alice/model", "Hello", description="Body text"
    ),
    "create_pull_request": lambda api, lib: api.create_pull_request(
        "alice/model", "Hello", description="Body text"
    ),
    "comment_discussion": lambda api, lib: api.comment_discussion("alice/model", 1, "hi"),
    "get_discussion_details": lambda api, lib: api.get_discussion_details("alice/model", 1),
    "change_discussion_status": lambda api, lib: api.change_discussion_status(
        "alice/model", 1, "closed", comment="done"
    ),
}


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


def normalized(r: Recorded) -> tuple[str, str, dict[str, list[str]], Any]:
    if r.headers.get("content-type", "").startswith("application/x-ndjson"):
        body: Any = [json.loads(line) for line in r.body.decode().splitlines()]
    else:
        try:
            body = json.loads(r.body) if r.body else None
        except ValueError:
            body = r.body
    return r.method, r.path, r.query, body


def sent_by(hub: FakeHub, call: Callable[[], Any], keep_whoami: bool) -> list[tuple]:
    start = len(hub.requests)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # huggingface_hub's own deprecation notices
        call()
    # Both clients look up the namespace with whoami; only our client caches it.
    return [normalized(r) for r in hub.requests[start:] if keep_whoami or "whoami" not in r.path]


@pytest.mark.parametrize("name", list(CALLS))
def test_same_request_as_huggingface_hub(hub: FakeHub, name: str, monkeypatch) -> None:
    monkeypatch.setattr(constants, "INFERENCE_ENDPOINTS_ENDPOINT", hub.url + "/v2")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    theirs = HfApi(endpoint=hub.url, token="hf_test")
    ours = HubClient(hub.url, "hf_test", env={})
    keep = name == "whoami"
    expected = sent_by(hub, lambda: CALLS[name](theirs, "hf"), keep)
    actual = sent_by(hub, lambda: CALLS[name](ours, "ours"), keep)
    assert expected, "huggingface_hub sent nothing: the recorder is missing a route"
    assert actual == expected
