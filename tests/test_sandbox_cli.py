from __future__ import annotations

import re
import sys
import time
import warnings
from pathlib import Path

import pytest
import requests

from server import HubClient, WebhooksServer
from server.ui import landing_intro
from tests.pg import free_port
from tests.procs import ServerProcess, spacehooks

pytestmark = pytest.mark.slow


def test_sandbox_command_serves_any_client(tmp_path: Path) -> None:
    port = free_port()
    proc = ServerProcess(
        [
            sys.executable,
            "-m",
            "server.cli",
            "sandbox",
            "--port",
            str(port),
            "--token",
            "hf_demo_token",
            "--speed",
            "1000",
        ],
        {},
        tmp_path / "log",
        port,
    )
    try:
        proc.wait_ready(path="/_sandbox/info")
        from huggingface_hub import HfApi

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert HfApi(endpoint=proc.url, token="hf_demo_token").whoami()["name"] == "demo"
        hub = HubClient(proc.url, "hf_demo_token", env={})
        hub.request_space_hardware("demo/trainer", "a10g-small")
        assert hub.wait_for_space("demo/trainer", poll_interval=0.01).hardware == "a10g-small"
    finally:
        proc.stop()
    assert f"export HF_ENDPOINT=http://127.0.0.1:{port}" in proc.output
    assert "export HF_TOKEN=hf_demo_token" in proc.output


def test_serve_without_a_token_runs_the_whole_loop_in_the_sandbox(tmp_path: Path) -> None:
    env = {
        "SPACEHOOKS_DB": str(tmp_path / "inbox.db"),
        "SPACEHOOKS_SANDBOX_TOKEN": "hf_demo",
        "SPACEHOOKS_SANDBOX_SPEED": "1000",
        "WEBHOOK_SECRET": "loop",
    }
    server = spacehooks("serve", "--no-ui", env=env, log=tmp_path / "log")
    try:
        server.wait_ready()
        server.wait_for_output("Webhooks are ready")
        banner = next(line for line in server.output.splitlines() if "SANDBOX MODE" in line)
        sandbox_url = re.search(r"sandbox Hub at (http://127\.0\.0\.1:\d+)", banner).group(1)
        hub = HubClient(sandbox_url, "hf_demo", env={})
        (webhook,) = hub.list_webhooks()
        assert webhook.url == f"http://127.0.0.1:{server.port}/webhooks/hub"
        hub.upload_file(
            path_or_fileobj=b"more rows",
            path_in_repo="rows.csv",
            repo_id="demo/corpus",
            repo_type="dataset",
        )
        deadline = time.monotonic() + 30
        while hub.get_space_runtime("demo/trainer").requested_hardware != "t4-small":
            assert time.monotonic() < deadline, server.output[-2000:]
            time.sleep(0.05)
        deliveries = requests.get(
            server.url + "/api/deliveries", params={"repo": "demo/corpus"}, timeout=5
        ).json()["items"]
        assert [(d["scope"], d["status"]) for d in deliveries] == [("repo.content", "succeeded")]
    finally:
        server.stop()
    assert "loop" not in server.output.replace("loopback", "")


def test_landing_page_shows_a_sandbox_banner(make_settings) -> None:
    server = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    assert "SANDBOX" not in landing_intro(server)
    server.sandbox_url = "http://127.0.0.1:9999"
    page = landing_intro(server)
    assert "**SANDBOX**" in page and "http://127.0.0.1:9999" in page
