from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import sample
from tests.pg import free_port
from tests.procs import ROOT, ServerProcess, spacehooks


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "SPACEHOOKS_DB": str(tmp_path / "inbox.db"),
        "LEDGER_PATH": str(tmp_path / "ledger"),
        "WEBHOOK_SECRET": "cli-secret",
        **extra,
    }


def test_serve_loads_handlers_prints_urls_and_answers(tmp_path: Path) -> None:
    server = spacehooks(
        "serve", "--handlers", "tests.apps.ledger", env=env_for(tmp_path), log=tmp_path / "log"
    )
    try:
        server.wait_ready()
        r = requests.post(
            server.url + "/webhooks/hub",
            data=sample("repo-content-main-and-tag.json"),
            headers={"x-webhook-secret": "cli-secret", "content-type": "application/json"},
        )
        assert r.status_code == 200 and r.json() == {"recorded": "6390e855e30d9209411de93b"}
        assert (tmp_path / "ledger").read_text().count("\n") == 1
    finally:
        # uvicorn re-raises the SIGTERM it handled, after a graceful shutdown
        assert server.stop() in (0, -15)
    out = server.output
    assert "Application shutdown complete" in out
    assert f"POST http://127.0.0.1:{server.port}/webhooks/hub" in out
    assert f"127.0.0.1:{server.port}" in out
    assert "cli-secret" not in out


def test_serve_on_a_space_binds_all_interfaces_and_shows_the_space_url(tmp_path: Path) -> None:
    env = env_for(tmp_path, SPACE_ID="me/hooks", SPACE_HOST="me-hooks.hf.space")
    server = spacehooks("serve", "--handlers", "tests.apps.ledger", env=env, log=tmp_path / "log")
    try:
        server.wait_ready()
    finally:
        server.stop()
    assert f"0.0.0.0:{server.port}" in server.output
    assert "POST https://me-hooks.hf.space/webhooks/hub" in server.output


def test_share_without_network_says_so_in_one_line_and_keeps_serving(tmp_path: Path) -> None:
    env = env_for(tmp_path, HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    server = spacehooks(
        "serve", "--share", "--handlers", "tests.apps.ledger", env=env, log=tmp_path / "log"
    )
    try:
        server.wait_ready()
        server.wait_for_output("Webhooks are ready")
        share_lines = [line for line in server.output.splitlines() if "--share" in line]
        assert len(share_lines) == 1
        assert "serving locally only" in share_lines[0]
        assert requests.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in server.output


def test_bad_environment_is_one_line_and_exit_1(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SPACEHOOKS_ACK_BUDGET": "soon", "HOME": str(tmp_path)},
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0
    assert "SPACEHOOKS_ACK_BUDGET='soon'" in r.stderr and "Traceback" not in r.stderr


def test_space_without_secret_refuses_to_start(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "SPACE_ID": "me/hooks",
            "HOME": str(tmp_path),
            "SPACEHOOKS_DB": str(tmp_path / "x.db"),
        },
    )
    assert r.returncode == 1 and "WEBHOOK_SECRET" in r.stderr and "Traceback" not in r.stderr


def test_plain_uvicorn_serves_the_asgi_entry_point(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-m", "uvicorn", "server.asgi:app", "--port", str(port)],
        env_for(tmp_path),
        tmp_path / "log",
        port,
    )
    try:
        server.wait_ready()
        r = requests.post(
            server.url + "/webhooks/hub?secret=cli-secret", data=sample("repo-content-pr-ref.json")
        )
        # handlers/ has no automation enabled by default: the endpoint is absent
        assert r.status_code == 404
    finally:
        server.stop()


def test_help_for_every_command() -> None:
    for args in (["--help"], ["serve", "--help"]):
        r = subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and "usage: spacehooks" in r.stdout


def test_webhook_endpoint_script_serves_at_exit_and_with_launch(tmp_path: Path) -> None:
    for launch_now in ("", "1"):
        port = free_port()
        env = env_for(
            tmp_path,
            GRADIO_SERVER_PORT=str(port),
            LAUNCH_NOW=launch_now,
            SPACEHOOKS_DB=str(tmp_path / f"{launch_now or 'atexit'}.db"),
        )
        server = ServerProcess(
            [sys.executable, "-m", "tests.apps.hf_style"], env, tmp_path / f"log{launch_now}", port
        )
        try:
            server.wait_ready()
            headers = {"x-webhook-secret": "cli-secret"}
            body = sample("repo-content-main-and-tag.json")
            r = requests.post(server.url + "/webhooks/trigger_training", data=body, headers=headers)
            assert r.json() == {"training": "some-user/some-dataset"}
            r = requests.post(server.url + "/webhooks/say_hello", data=body, headers=headers)
            assert r.json() == {"message": "hello"}
        finally:
            server.stop()


def test_serve_refuses_a_misconfigured_automation_in_one_line(tmp_path: Path) -> None:
    env = env_for(tmp_path, GPU_ON_UPDATE_REPO="demo/corpus", GPU_ON_UPDATE_HARDWARE="t4-small")
    server = spacehooks("serve", env=env, log=tmp_path / "log")
    assert server.proc.wait(60) == 1
    server.stop()
    out = server.output.strip().splitlines()
    assert out[-1] == (
        "spacehooks serve: gpu_on_update is misconfigured: GPU_ON_UPDATE_SPACE is required"
    )
    assert "Traceback" not in server.output


def test_serve_turns_on_the_automations_its_variables_configure(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        GPU_ON_UPDATE_REPO="demo/corpus",
        GPU_ON_UPDATE_SPACE="demo/trainer",
        GPU_ON_UPDATE_HARDWARE="t4-small",
    )
    server = spacehooks("serve", "--no-ui", env=env, log=tmp_path / "log")
    try:
        server.wait_ready()
        names = [s["name"] for s in requests.get(server.url + "/api/schedules").json()["items"]]
    finally:
        server.stop()
    assert names == ["gpu_on_update.sweep"]
    assert "automation gpu_on_update is on: 1 handler(s), 1 schedule(s)" in server.output
    for off in ("endpoint_follows_model", "space_pr_previews", "instances_on_schedule"):
        assert f"automation {off} is on" not in server.output
