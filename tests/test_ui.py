from __future__ import annotations

import gc
import time

import pytest
from fastapi.testclient import TestClient

from server import WebhookPayload, WebhooksServer
from tests.conftest import sample

# Gradio itself leaves event loops and sockets unclosed when it builds and mounts a page (seen
# with a bare `gr.Blocks` + `mount_gradio_app`, no spacehooks code); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_gradio_leaks():
    yield
    gc.collect()  # finalise them here, where the filter above applies


def test_landing_page_is_gradio_mounted_lazily_and_webhooks_do_not_wait(make_settings) -> None:
    app = WebhooksServer(webhook_secret="ui-secret", settings=make_settings(), routers=[])

    @app.add_webhook("/ping")
    def ping(payload: WebhookPayload):
        return "pong"

    with TestClient(app.fastapi_app) as client:
        # Right after start the UI is still importing; the webhook is answered regardless.
        r = client.post(
            "/webhooks/ping",
            content=sample("comment-create.json"),
            headers={"x-webhook-secret": "ui-secret"},
        )
        assert r.json() == "pong"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = client.get("/")  # the "starting" page until Gradio is mounted, then Gradio's
            assert page.status_code == 200
            if "is starting its console" not in page.text:
                break
            time.sleep(0.2)
        assert app._lazy_ui.app is not None
        assert page.status_code == 200
        assert "gradio" in page.text.lower()
        config = client.get("/config").json()
        text = str(config)
        assert "Webhook URLs" in text and "webhook-urls" in text  # filled per visitor
        assert "A webhook secret is configured" in text
        assert "ui-secret" not in text


def test_webhook_urls_are_the_visitors_or_the_spaces(make_settings) -> None:
    from server.ui import webhook_urls_for

    app = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    app.add_webhook("/a")(lambda: 1)
    app.add_webhook("/b")(lambda: 2)
    assert webhook_urls_for(app, {"host": "127.0.0.1:7860"}) == (
        "http://127.0.0.1:7860/webhooks/a\nhttp://127.0.0.1:7860/webhooks/b"
    )
    tunnel = {
        "host": "10.0.0.1",
        "x-forwarded-host": "abc.gradio.live",
        "x-forwarded-proto": "https",
    }
    assert webhook_urls_for(app, tunnel).startswith("https://abc.gradio.live/webhooks/a")
    space = WebhooksServer(
        ui=False,
        webhook_secret="s",
        routers=[],
        settings=make_settings(SPACE_ID="me/h", SPACE_HOST="me-h.hf.space"),
    )
    space.add_webhook("/a")(lambda: 1)
    assert webhook_urls_for(space, {"host": "internal"}) == "https://me-h.hf.space/webhooks/a"
