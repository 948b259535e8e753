from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.client import (
    BadRequest,
    Conflict,
    EntryNotFound,
    Forbidden,
    HubClient,
    HubConnectionError,
    NotFound,
    PreconditionFailed,
    RateLimited,
    RepoNotFound,
    RetryConfig,
    RevisionNotFound,
    ServerError,
    Unauthorized,
    resolve_token,
)
from tests.fakehub import FakeHub

FAST = RetryConfig(max_retries=3, base_delay=0.01, max_delay=0.05)
TOKEN = "hf_secret_token_value_123"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


def client(hub: FakeHub, **kw) -> HubClient:
    return HubClient(hub.url, TOKEN, retry=FAST, env={}, **kw)


def test_429_with_retry_after_is_waited_out(hub: FakeHub) -> None:
    hub.fail("/api/spaces/a/b/runtime", 429, times=1, headers={"Retry-After": "1"})
    started = time.monotonic()
    runtime = client(hub).get_space_runtime("a/b")
    assert runtime.stage == "RUNNING"
    assert time.monotonic() - started >= 1.0  # the server's Retry-After, not the 10 ms backoff
    assert len(hub.find("GET", "/runtime")) == 2


def test_503_then_success_is_retried(hub: FakeHub) -> None:
    hub.fail("/api/spaces/a/b/runtime", 503, times=2)
    assert client(hub).get_space_runtime("a/b").hardware == "t4-small"
    assert len(hub.find("GET", "/runtime")) == 3


def test_retries_give_up_with_the_last_error(hub: FakeHub) -> None:
    hub.fail("/api/spaces/a/b/runtime", 502, times=10, body={"error": "bad gateway"})
    with pytest.raises(ServerError, match=r"GET /api/spaces/a/b/runtime answered 502: bad gateway"):
        client(hub).get_space_runtime("a/b")
    assert len(hub.find("GET", "/runtime")) == 4  # first try + 3 retries


def test_non_idempotent_post_is_not_retried(hub: FakeHub) -> None:
    hub.fail("/api/spaces/a/b/restart", 503, times=1)
    with pytest.raises(ServerError):
        client(hub).restart_space("a/b")
    assert len(hub.find("POST", "/restart")) == 1


class DropFirst:
    """A raw TCP server: drops the first connection, then answers a fixed runtime."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        body = b'{"stage": "RUNNING", "hardware": {"current": "cpu-basic", "requested": null}}'
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections == 1:
                conn.close()  # no answer at all
                continue
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            conn.close()


def test_a_dropped_connection_is_retried() -> None:
    server = DropFirst()
    try:
        runtime = HubClient(server.url, TOKEN, retry=FAST, env={}).get_space_runtime("a/b")
    finally:
        server.sock.close()
    assert runtime.hardware == "cpu-basic" and server.connections == 2


def test_no_server_is_a_connection_error_naming_the_host() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HubConnectionError, match=rf"no answer from http://127.0.0.1:{port}"):
        HubClient(f"http://127.0.0.1:{port}", TOKEN, retry=FAST, env={}).get_space_runtime("a/b")


@pytest.mark.parametrize(
    ("status", "headers", "body", "cls", "text"),
    [
        (400, {}, {"error": ["bad flavor", "see docs"]}, BadRequest, "bad flavor; see docs"),
        (
            401,
            {"X-Error-Message": "Invalid credentials in Authorization header"},
            None,
            Unauthorized,
            "Invalid credentials",
        ),
        (401, {}, {"error": "Repository not found"}, RepoNotFound, "does not exist, or this token"),
        (403, {"X-Error-Message": "You have read access but not write"}, None, Forbidden, "write"),
        (
            404,
            {"X-Error-Code": "RevisionNotFound"},
            {"error": "Invalid rev id: x"},
            RevisionNotFound,
            "Invalid rev id",
        ),
        (404, {"X-Error-Code": "EntryNotFound"}, None, EntryNotFound, "404"),
        (404, {}, {"error": "nope"}, NotFound, "nope"),
        (409, {}, {"error": "exists", "url": "u"}, Conflict, "exists"),
        (412, {}, {"error": "The branch was updated"}, PreconditionFailed, "branch was updated"),
        (429, {"Retry-After": "0"}, {"error": "slow down"}, RateLimited, "slow down"),
        (500, {"X-Request-Id": "req-42"}, {"error": "oops"}, ServerError, "request id req-42"),
    ],
)
def test_each_error_class_and_its_message(hub, status, headers, body, cls, text) -> None:
    hub.fail("/api/spaces/a/b/pause", status, times=10, headers=headers, body=body)
    with pytest.raises(cls, match=text) as info:
        HubClient(hub.url, TOKEN, retry=RetryConfig(max_retries=0), env={}).pause_space("a/b")
    error = info.value
    assert error.status_code == status and error.method == "POST"
    assert error.path == "/api/spaces/a/b/pause"
    assert "POST /api/spaces/a/b/pause" in str(error)
    assert TOKEN not in str(error) and TOKEN not in repr(error)


def test_rate_limited_exposes_the_server_reset(hub: FakeHub) -> None:
    hub.fail(
        "/api/whoami-v2",
        429,
        times=10,
        headers={"RateLimit": '"api";r=0;t=42'},
        body={"error": "quota"},
    )
    with pytest.raises(RateLimited) as info:
        HubClient(hub.url, TOKEN, retry=RetryConfig(max_retries=0), env={}).whoami()
    assert info.value.retry_after == 42


def test_token_resolution_order(tmp_path: Path) -> None:
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text("hf_from_file\n")
    env = {"HF_HOME": str(tmp_path / "hf")}
    assert resolve_token(None, env) == "hf_from_file"
    assert resolve_token(None, {**env, "HF_TOKEN": " hf_from_env\r\n"}) == "hf_from_env"
    assert resolve_token("hf_argument", {**env, "HF_TOKEN": "hf_from_env"}) == "hf_argument"
    assert resolve_token(False, {**env, "HF_TOKEN": "hf_from_env"}) is None
    assert resolve_token(None, {"XDG_CACHE_HOME": str(tmp_path / "none")}) is None
    (tmp_path / "xdg" / "huggingface").mkdir(parents=True)
    (tmp_path / "xdg" / "huggingface" / "token").write_text("hf_xdg")
    assert resolve_token(None, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == "hf_xdg"


def test_token_sent_as_bearer_and_never_shown(hub: FakeHub, caplog) -> None:
    api = client(hub)
    api.whoami()
    assert hub.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert hub.requests[-1].headers["user-agent"].startswith("spacehooks/")
    assert TOKEN not in repr(api) and TOKEN not in str(api) and TOKEN not in repr(api._http)
    hub.fail("/api/spaces", 503, times=2)
    api.get_space_runtime("a/b")
    assert TOKEN not in caplog.text
    assert "retry 1/3" in caplog.text
    none = HubClient(hub.url, False, env={"HF_TOKEN": TOKEN})
    none.get_space_runtime("a/b")
    assert "authorization" not in hub.requests[-1].headers


def test_endpoint_from_argument_then_hf_endpoint() -> None:
    assert HubClient(env={}).endpoint == "https://huggingface.co"
    assert HubClient(env={"HF_ENDPOINT": "http://h:1/"}).endpoint == "http://h:1"
    assert HubClient("http://x:2", env={"HF_ENDPOINT": "http://h:1"}).endpoint == "http://x:2"


def test_whoami_is_cached(hub: FakeHub) -> None:
    api = client(hub)
    assert api.whoami()["name"] == "alice"
    api.whoami()
    assert len(hub.find("GET", "whoami")) == 1
