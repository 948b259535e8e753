from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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
