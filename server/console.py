"""The operations console (Gradio), mounted at /console behind a login.

Deliveries: the inbox with filters and paging, one delivery with its payload and every attempt,
Replay and Replay all dead. Send a test event: a shipped sample through the real webhook route
with the real secret. Gradio is imported by the caller (`ui.py`), lazily, after webhooks are up.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import inbox, inspection

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = ["build_console", "console_auth"]

PAGE_SIZE = 25
STATUSES = ["all", "queued", "running", "retrying", "succeeded", "dead", "unhandled"]
SAMPLES = {
    "repo.content: update (commit on main + tag)": "repo-content-main-and-tag.json",
    "repo.content: update (PR ref of a Space)": "repo-content-pr-ref.json",
    "repo.config: update": "repo-config-private.json",
    "discussion: create (pull request)": "discussion-create-pr.json",
    "discussion: update (closed)": "discussion-update-closed.json",
    "discussion.comment: create": "comment-create.json",
}
COLUMNS = ["received", "endpoint", "scope", "action", "repo", "status", "attempts", "id"]


def console_auth(server: WebhooksServer) -> tuple[bool, Any]:
    """(enabled, gradio auth) for the console.

    With SPACEHOOKS_ADMIN_TOKEN: a login whose password is the token. Without one: open only
    when `serve` bound the server to loopback, with no tunnel, off a Space; otherwise (plain
    uvicorn, where the bind is unknown, included) the console stays off. Sign in with Hugging
    Face for Spaces is not built yet.
    """
    import hmac

    token = server.settings.admin_token
    if token is not None:
        secret = token.get_secret_value().encode()
        return True, lambda _user, password: hmac.compare_digest(password.encode(), secret)
    local = (
        server.bind_host in ("127.0.0.1", "localhost", "::1")
        and not server.tunneled
        and not server.settings.on_space
    )
    return local, None


def _rows(page: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            d["received_at"][:19].replace("T", " "),
            d["endpoint"],
            d["scope"],
            d["action"],
            d["repo"],
            d["status"],
            d["attempts"],
            d["id"],
        ]
        for d in page["items"]
    ]


def build_console(server: WebhooksServer) -> Any:
    import gradio as gr
    import httpx

    def db() -> Any:
        if server.db is None:
            raise gr.Error("The server is starting or stopping.")
        return server.db

    async def list_page(status: str, repo: str, page_no: float) -> tuple[Any, str]:
        page = await db().aread(
            partial(
                inspection.list_deliveries,
                status=None if status == "all" else status,
                repo=repo.strip() or None,
                limit=PAGE_SIZE,
                offset=max(0, int(page_no or 1) - 1) * PAGE_SIZE,
            )
        )
        pages = max(1, -(-page["total"] // PAGE_SIZE))
        return _rows(page), f"{page['total']} deliveries, page {int(page_no or 1)} of {pages}"

    async def open_delivery(delivery_id: str) -> Any:
        detail = await db().aread(
            partial(inspection.delivery_detail, delivery_id=delivery_id.strip())
        )
        if detail is None:
            raise gr.Error(f"No delivery with id {delivery_id.strip()!r}.")
        return detail

    async def replay(delivery_id: str) -> Any:
        replayed = await db().write(
            partial(inbox.replay, delivery_id=delivery_id.strip(), now=time.time())
        )
        if replayed is None:
            raise gr.Error(f"No delivery with id {delivery_id.strip()!r}.")
        if server.worker is not None:
            server.worker.wake()
        return await open_delivery(delivery_id)

    async def replay_dead() -> str:
        ids = await db().write(partial(inbox.replay_dead, endpoint=None, now=time.time()))
        if server.worker is not None:
            server.worker.wake()
        return f"Replayed {len(ids)} dead deliveries."

    async def send(endpoint: str, sample: str) -> tuple[str, str]:
        body = (Path(__file__).parent / "samples" / SAMPLES[sample]).read_bytes()
        # A fresh webhook id, so that repeated sends are new deliveries, not duplicates.
        data = json.loads(body)
        data["webhook"]["id"] = f"console-{time.time_ns():x}"
        headers = {"content-type": "application/json"}
        if server.webhook_secret:
            headers["x-webhook-secret"] = server.webhook_secret
        transport = httpx.ASGITransport(app=server.fastapi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            response = await client.post(endpoint, json=data, headers=headers)
        delivery = response.headers.get("x-spacehooks-delivery", "")
        return f"HTTP {response.status_code}: {response.text[:500]}", delivery

    with gr.Blocks(title="spacehooks console") as console:
        gr.Markdown("# spacehooks console")
        if server.sandbox_url:
            gr.Markdown(
                f"**SANDBOX**: the clients talk to the sandbox Hub at "
                f"{server.sandbox_url}, not to huggingface.co."
            )
        with gr.Tab("Deliveries"):
            with gr.Row():
                status = gr.Dropdown(STATUSES, value="all", label="Status", elem_id="status")
                repo = gr.Textbox(label="Repo", placeholder="owner/name", elem_id="repo-filter")
                page_no = gr.Number(value=1, minimum=1, precision=0, label="Page", elem_id="page")
                refresh = gr.Button("Refresh", elem_id="refresh")
            summary = gr.Markdown(elem_id="summary")
            table = gr.Dataframe(headers=COLUMNS, interactive=False, elem_id="deliveries")
            with gr.Row():
                delivery_id = gr.Textbox(label="Delivery id", elem_id="delivery-id")
                open_button = gr.Button("Open", elem_id="open")
                replay_button = gr.Button("Replay", elem_id="replay")
                dead_button = gr.Button("Replay all dead", elem_id="replay-dead")
            dead_result = gr.Markdown(elem_id="dead-result")
            detail = gr.JSON(label="Delivery", elem_id="detail")
            refresh.click(list_page, [status, repo, page_no], [table, summary])
            status.change(list_page, [status, repo, page_no], [table, summary])
            open_button.click(open_delivery, [delivery_id], [detail])
            replay_button.click(replay, [delivery_id], [detail])
            dead_button.click(replay_dead, None, [dead_result])
        with gr.Tab("Send a test event"):
            paths = server.router.paths() or ["/webhooks/hub"]
            endpoint = gr.Dropdown(paths, value=paths[0], label="Endpoint", elem_id="endpoint")
            sample = gr.Dropdown(
                list(SAMPLES), value=next(iter(SAMPLES)), label="Sample", elem_id="sample"
            )
            send_button = gr.Button("Send", elem_id="send")
            result = gr.Textbox(label="Answer", elem_id="send-result")
            sent_id = gr.Textbox(label="Delivery id (open it in Deliveries)", elem_id="sent-id")
            send_button.click(send, [endpoint, sample], [result, sent_id])
        console.load(list_page, [status, repo, page_no], [table, summary])
    return console
