from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server import Settings

PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "payloads"
if not PAYLOADS.is_dir():  # the samples spacehooks ships are the same files
    PAYLOADS = Path(__file__).resolve().parents[1] / "server" / "samples"


def sample(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def sample_json(name: str) -> dict:
    return json.loads(sample(name))


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    from tests.pg import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs against a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inbox.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings from an explicit environment, with the inbox in this test's folder."""

    def make(**env: str) -> Settings:
        env.setdefault("SPACEHOOKS_DB", str(tmp_path / "inbox.db"))
        env.setdefault("SPACEHOOKS_POLL_INTERVAL", "0.05")
        return Settings.from_env(env)

    return make


@dataclass
class SandboxHub:
    """A sandbox Hub served on loopback, with a client logged in as its demo account."""

    sandbox: Any
    url: str
    hub: Any

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict:
        """Path -> bytes of the repo's files at `revision` (read from the sandbox's state)."""
        repo = self.sandbox.state.repo(repo_type, repo_id)
        assert repo is not None, f"no {repo_type} {repo_id} in the sandbox"
        return {path: blob.data for path, blob in (repo.files_at(revision) or {}).items()}

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        repo = self.sandbox.state.repo(repo_type, repo_id)
        return 0 if repo is None else len(repo.commits)


@pytest.fixture
def sandbox_hub() -> Iterator[SandboxHub]:
    from server.client import HubClient, RetryConfig
    from server.sandbox.app import Sandbox
    from tests.loopback import serve

    sandbox = Sandbox(speed=1000)
    with serve(sandbox.app) as url:
        sandbox.base_url = url
        retry = RetryConfig(max_retries=3, base_delay=0.01, max_delay=0.05)
        yield SandboxHub(sandbox, url, HubClient(url, sandbox.demo.token, env={}, retry=retry))
    sandbox.close()
