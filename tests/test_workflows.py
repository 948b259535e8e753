"""The Hub workflow commands, end to end against the sandbox on loopback."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import HubClient, Router, WebhooksServer
from server.cli import main
from server.sandbox.app import Sandbox
from server.workflows import deploy, deploy_files
from tests.loopback import serve
from tests.pg import free_port
from tests.procs import ROOT, ServerProcess, spacehooks


@pytest.fixture
def box(monkeypatch) -> Iterator[tuple[Sandbox, str, HubClient]]:
    sandbox = Sandbox(speed=1000)
    with serve(sandbox.app) as url:
        sandbox.base_url = url
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HF_TOKEN", sandbox.demo.token)
        monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
        yield sandbox, url, HubClient(url, sandbox.demo.token, env={})
    sandbox.close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_register_twice_makes_one_webhook(box, capsys) -> None:
    _, _, hub = box
    args = [
        "register",
        "https://me-hooks.hf.space/webhooks/hub",
        "--watch",
        "user:demo",
        "--watch",
        "dataset:demo/corpus",
        "--domain",
        "repo",
        "--secret",
        "s1",
    ]
    code, out, _ = run(capsys, *args)
    assert code == 0 and out.startswith("Created webhook")
    webhook_id = out.strip().splitlines()[-1]
    code, out, _ = run(capsys, *args[:-2], "--domain", "discussion", "--secret", "s2")
    assert code == 0 and out.startswith("Updated webhook") and webhook_id in out
    (webhook,) = hub.list_webhooks()
    assert webhook.id == webhook_id and webhook.domains == ["repo", "discussion"]
    assert webhook.secret == "s2"
    assert [(w.type, w.name) for w in webhook.watched] == [
        ("user", "demo"),
        ("dataset", "demo/corpus"),
    ]


def test_webhooks_list_show_disable_enable_delete(box, capsys) -> None:
    _, _, hub = box
    webhook = hub.create_webhook(
        url="https://x.example/webhooks/hub",
        secret="hidden-value",
        watched=[{"type": "user", "name": "demo"}],
    )
    code, out, _ = run(capsys, "webhooks", "list")
    assert code == 0 and webhook.id in out and "enabled" in out
    code, out, _ = run(capsys, "webhooks", "disable", webhook.id)
    assert json.loads(out)["disabled"] is True
    code, out, _ = run(capsys, "webhooks", "show", webhook.id)
    shown = json.loads(out)
    assert shown["secret"] == "set" and "hidden-value" not in out
    run(capsys, "webhooks", "enable", webhook.id)
    assert hub.get_webhook(webhook.id).disabled is False
    code, out, _ = run(capsys, "webhooks", "delete", webhook.id)
    assert code == 0 and hub.list_webhooks() == []
    code, _, err = run(capsys, "webhooks", "show")
    assert code == 2 and "needs a WEBHOOK_ID" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["register", "https://x/webhooks/hub", "--watch", "repo:demo"],
            "use user:NAME, org:NAME, model:NS/NAME, dataset:NS/NAME or space:NS/NAME",
        ),
        (
            ["register", "https://x/webhooks/hub", "--watch", "model:nonamespace"],
            "use user:NAME, org:NAME, model:NS/NAME",
        ),
        (["deploy", "hooks"], "Space id 'hooks' needs a namespace: use user/name"),
        (
            ["deploy", "demo/hooks", "--hardware", "h900"],
            "--hardware 'h900' is unknown: use one of",
        ),
        (
            ["send", "http://127.0.0.1:9/webhooks/hub", "--event", "repo:explode"],
            "has no sample: use one of repo.content:update",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_allowed_form(box, capsys, argv, message) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_deploy_without_a_token_says_so(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no token file either
    code, _, err = run(capsys, "deploy", "demo/hooks")
    assert code == 2 and "needs a Hub token with write access: set HF_TOKEN" in err


def project_copy(tmp_path: Path) -> Path:
    """This project's deployable files, plus a handler, as a user's checkout would hold them."""
    root = tmp_path / "project"
    for rel in ("space", "server", "handlers"):
        shutil.copytree(ROOT / rel, root / rel, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "handlers" / "echo.py").write_text(
        "from server import on\n\n\n@on('repo.content')\n"
        "def echo(payload):\n    return {'echo': payload.repo.name}\n"
    )
    return root


def test_deploy_then_a_commit_reaches_the_deployed_server(box, tmp_path, capsys) -> None:
    sandbox, url, hub = box
    root = project_copy(tmp_path)
    port = free_port()
    done = deploy(
        hub,
        "demo/hooks",
        watched=[{"type": "dataset", "name": "demo/corpus"}],
        public_url=f"http://127.0.0.1:{port}",
        root=root,
        poll_interval=0.01,
        say=lambda line: None,
    )
    files = set(hub.list_repo_files("demo/hooks", repo_type="space"))
    assert set(deploy_files(root)) <= files
    assert {
        "app.py",
        "requirements.txt",
        "README.md",
        "pyproject.toml",
        "server/app.py",
        "handlers/echo.py",
    } <= files
    assert set(hub.get_space_secrets("demo/hooks")) == {"WEBHOOK_SECRET", "HF_TOKEN"}
    assert hub.get_space_runtime("demo/hooks").stage == "RUNNING"
    assert done.webhook.url == f"http://127.0.0.1:{port}/webhooks/hub"
    assert done.generated_secret and done.console_url == f"http://127.0.0.1:{port}/"
    # A second deploy uploads nothing and keeps the secret.
    again = deploy(
        hub,
        "demo/hooks",
        public_url=f"http://127.0.0.1:{port}",
        root=root,
        poll_interval=0.01,
        say=lambda line: None,
    )
    assert again.uploaded == [] and again.generated_secret is None
    assert len(hub.list_webhooks()) == 1
    # Run the files the Space got, as the Space would, and commit to the watched dataset.
    space_dir = tmp_path / "space-files"
    for path in files:
        target = space_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(
            hub._http.request("GET", f"/spaces/demo/hooks/resolve/main/{path}").content
        )
    env = {
        "SPACE_ID": "demo/hooks",
        "SPACE_HOST": f"127.0.0.1:{port}",
        "WEBHOOK_SECRET": done.generated_secret,
        "GRADIO_SERVER_PORT": str(port),
        "SPACEHOOKS_DB": str(tmp_path / "space.db"),
        "HF_TOKEN": sandbox.demo.token,
        "HF_ENDPOINT": url,
        "PYTHONPATH": "",
    }
    app = ServerProcess(
        [sys.executable, str(space_dir / "app.py")], env, tmp_path / "space.log", port
    )
    try:
        app.wait_ready()
        hub.upload_file(
            path_or_fileobj=b"rows",
            path_in_repo="new.csv",
            repo_id="demo/corpus",
            repo_type="dataset",
        )
        sandbox.deliveries.wait_idle()
        (attempt,) = sandbox.state.webhooks[done.webhook.id].attempts
        assert attempt["status"] == 200 and json.loads(attempt["response"]) == {
            "echo": "demo/corpus"
        }
    finally:
        app.stop()


def test_send_reports_status_response_and_delivery_id(box, capsys, make_settings) -> None:
    router = Router()
    router.on("repo.content")(lambda payload: {"seen": payload.repo.name})
    server = WebhooksServer(
        ui=False, settings=make_settings(WEBHOOK_SECRET="send-secret"), routers=[router]
    )
    with serve(server.fastapi_app, lifespan="on") as hooks:
        code, out, _ = run(capsys, "send", hooks + "/webhooks/hub", "--secret", "send-secret")
        assert code == 0 and "HTTP 200" in out and '{"seen":"some-user/some-dataset"}' in out
        delivery = out.strip().splitlines()[-1].split(": ")[1]
        assert len(delivery) == 32
        code, out, _ = run(capsys, "send", hooks + "/webhooks/hub", "--secret", "send-secret")
        assert f'"duplicate_of":"{delivery}"' in out and delivery in out.splitlines()[-1]
        code, out, _ = run(
            capsys,
            "send",
            hooks + "/webhooks/hub",
            "--secret",
            "send-secret",
            "--sign",
            "--event",
            "discussion:create",
        )
        assert code == 0 and "HTTP 200" in out  # signed: a fresh webhook-id, not a duplicate
        code, out, _ = run(capsys, "send", hooks + "/webhooks/hub", "--secret", "wrong")
        assert code == 1 and "HTTP 403" in out and "not stored" in out


def test_serve_share_register_without_network_leaves_the_webhook(box, tmp_path) -> None:
    sandbox, url, hub = box
    webhook = hub.create_webhook(
        url="https://stable.example/webhooks/hub", watched=[{"type": "user", "name": "demo"}]
    )
    env = {
        "HF_ENDPOINT": url,
        "HF_TOKEN": sandbox.demo.token,
        "WEBHOOK_SECRET": "x",
        "SPACEHOOKS_DB": str(tmp_path / "db"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "LEDGER_PATH": str(tmp_path / "ledger"),
    }
    server = spacehooks(
        "serve",
        "--no-ui",
        "--share",
        "--register",
        webhook.id,
        "--handlers",
        "tests.apps.ledger",
        env=env,
        log=tmp_path / "log",
    )
    try:
        server.wait_ready()
        server.wait_for_output("Webhooks are ready")
    finally:
        server.stop()
    assert f"--register: no tunnel, so webhook {webhook.id} was left as it is." in server.output
    assert hub.get_webhook(webhook.id).url == "https://stable.example/webhooks/hub"
