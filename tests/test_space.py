from __future__ import annotations

import shutil
import sys
from pathlib import Path

import requests
import tomllib

from tests.pg import free_port
from tests.procs import ROOT, ServerProcess


def test_space_requirements_cover_the_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["postgres"])
    listed = {
        line.strip()
        for line in (ROOT / "space" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert wanted <= listed


def test_space_app_serves_from_a_copy_of_the_space_files(tmp_path: Path) -> None:
    space = tmp_path / "space"
    shutil.copytree(ROOT / "space", space)
    for package in ("server", "handlers"):
        shutil.copytree(
            ROOT / package, space / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    (space / "handlers" / "echo.py").write_text(
        "from server import on\n\n@on('repo')\ndef echo(payload):\n    return payload.repo.name\n"
    )
    port = free_port()
    env = {
        "SPACE_ID": "me/hooks",
        "SPACE_HOST": "me-hooks.hf.space",
        "WEBHOOK_SECRET": "sp",
        "GRADIO_SERVER_PORT": str(port),
        "SPACEHOOKS_DB": str(tmp_path / "inbox.db"),
        "PYTHONPATH": "",
    }
    server = ServerProcess([sys.executable, str(space / "app.py")], env, tmp_path / "log", port)
    try:
        server.wait_ready()
        body = (ROOT / "server" / "samples" / "repo-content-pr-ref.json").read_bytes()
        r = requests.post(
            server.url + "/webhooks/hub", data=body, headers={"x-webhook-secret": "sp"}
        )
        assert r.json() == "some-user/gradio-user-history"
    finally:
        server.stop()
    assert "POST https://me-hooks.hf.space/webhooks/hub" in server.output
    assert f"0.0.0.0:{port}" in server.output
