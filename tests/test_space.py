"""The Space's files, exactly as `deploy` uploads them, installed and run the way a Space does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from server.workflows import deploy_files
from tests.pg import free_port
from tests.procs import ROOT, ServerProcess

pytestmark = pytest.mark.slow


def test_space_requirements_install_spacehooks_itself() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "space" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == [".[postgres]"]  # one source of truth for dependencies: pyproject.toml
    assert "pyproject.toml" in deploy_files()


def test_deployed_files_install_in_a_fresh_venv_and_serve(tmp_path: Path) -> None:
    space = tmp_path / "space"
    for path_in_repo, local in deploy_files().items():
        (space / path_in_repo).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(local, space / path_in_repo)
    (space / "handlers" / "echo.py").write_text(
        "from server import on\n\n\n@on('repo')\ndef echo(payload):\n    return payload.repo.name\n"
    )
    venv = tmp_path / "venv"
    # The machine's packages stay visible, so the install resolves offline-fast; spacehooks
    # itself is built and installed from the uploaded files, as on a Space.
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            "requirements.txt",
        ],
        cwd=space,
        check=True,
        timeout=600,
    )
    installed = subprocess.run(
        [str(python), "-c", "import server, sys; print(server.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.startswith(str(venv))  # the venv's own copy, not this checkout
    port = free_port()
    env = {
        "SPACE_ID": "me/hooks",
        "SPACE_HOST": "me-hooks.hf.space",
        "WEBHOOK_SECRET": "sp",
        "GRADIO_SERVER_PORT": str(port),
        "SPACEHOOKS_DB": str(tmp_path / "inbox.db"),
        "HF_TOKEN": "hf_unused",
        "PYTHONPATH": "",
    }
    server = ServerProcess([str(python), "app.py"], env, tmp_path / "log", port, cwd=space)
    try:
        server.wait_ready(timeout=120)
        body = (ROOT / "server" / "samples" / "repo-content-pr-ref.json").read_bytes()
        r = requests.post(
            server.url + "/webhooks/hub", data=body, headers={"x-webhook-secret": "sp"}, timeout=10
        )
        assert r.json() == "some-user/gradio-user-history"
    finally:
        server.stop()
    assert "POST https://me-hooks.hf.space/webhooks/hub" in server.output
    assert f"0.0.0.0:{port}" in server.output
