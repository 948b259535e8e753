"""The operations console (Gradio), mounted at /console behind a login.

Deliveries: the inbox with filters and paging, one delivery with its payload and every attempt,
Replay and Replay all dead. Schedules: timed automations and CommitSchedulers with their next
run and last result; Run now, Pause, Resume. Resources: the Spaces, Inference Endpoints and
instances the handlers acted on, as they are now. Send a test event: a shipped sample through
the real webhook route with the real secret. Gradio is imported by the caller (`ui.py`), lazily,
after webhooks are up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import inbox, inspection, scheduling
from .ui import HUB_SIGN_IN

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = ["ConsoleAccess", "build_console", "console_access", "signed_in_user"]

log = logging.getLogger("spacehooks")

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
SCHEDULE_COLUMNS = ["key", "what", "when", "next run", "paused", "last run", "last result", "error"]
RESOURCE_COLUMNS = ["kind", "id", "status", "hardware", "scale", "USD/hour", "touched"]


@dataclass(frozen=True)
class ConsoleAccess:
    """Who may use the console.

    - ``hub``: a Space with ``hf_oauth: true`` (it sets OAUTH_CLIENT_ID): "Sign in with Hugging
      Face", and only the users in SPACEHOOKS_ADMINS (default: the Space's owner) get in; others
      see a polite refusal. Every console action checks the signed-in user again.
    - ``token``: SPACEHOOKS_ADMIN_TOKEN is set: a login form whose password is the token.
    - ``local``: no token, and `serve` bound the server to loopback with no tunnel, off a Space.
    - ``off``: anything else (plain uvicorn, where the bind is unknown, included): fail closed.
    """

    mode: str
    auth: Any = None  # Gradio's `auth` callable in token mode

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def console_access(server: WebhooksServer) -> ConsoleAccess:
    import hmac

    settings = server.settings
    if settings.oauth_client_id:
        if not settings.admins:
            log.warning(
                "the console signs in with the Hub, but no one is an admin: set SPACEHOOKS_ADMINS"
            )
        return ConsoleAccess("hub")
    token = settings.admin_token
    if token is not None:
        secret = token.get_secret_value().encode()
        return ConsoleAccess(
            "token", lambda _user, password: hmac.compare_digest(password.encode(), secret)
        )
    local = (
        server.bind_host in ("127.0.0.1", "localhost", "::1")
        and not server.tunneled
        and not settings.on_space
    )
    return ConsoleAccess("local" if local else "off")


def signed_in_user(request: Any) -> str | None:
    """The Hub user name of a Gradio request's session (Gradio's OAuth stores it there)."""
    raw = getattr(request, "request", None)
    try:
        session = raw.session if raw is not None else {}
    except AssertionError:  # no session middleware: nobody signed in
        return None
    info = session.get("oauth_info") or {}
    if info.get("expires_at", 0) < time.time():
        return None
    name = (info.get("userinfo") or {}).get("preferred_username")
    return name if isinstance(name, str) else None


def admission(server: WebhooksServer, access: ConsoleAccess, request: Any) -> str | None:
    """None if this request may use the console, else why not (for the visitor)."""
    if access.mode != "hub":
        return None  # Gradio's login (token) or the bind (local) already decided
    user = signed_in_user(request)
    if user is None:
        return "Sign in with Hugging Face to use the console."
    if user.lower() not in server.settings.admins:
        return (
            f"Signed in as {user}, who is not an admin of this server. The Space's owner can "
            "add you to the SPACEHOOKS_ADMINS variable."
        )
    return None


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


def _when(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _schedule_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            i["key"],
            i["name"],
            i["trigger"],
            _when(i["next_run"]),
            "yes" if i["paused"] else "no",
            _when(i["last_run_at"]),
            i["last_result"] or "-",
            (i["last_error"] or "")[:200],
        ]
        for i in items
    ]


def _resource_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    def cost(value: float | None) -> str:
        return "unknown" if value is None else f"{value:.2f}"

    return [
        [
            i["kind"],
            i["id"],
            i["status"],
            i.get("hardware") or "-",
            i.get("scale") or "-",
            cost(i.get("hourly_cost")),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(i["touched_at"]))
            if i.get("touched_at")
            else "-",
        ]
        for i in items
    ]


def build_console(server: WebhooksServer, access: ConsoleAccess) -> Any:
    import gradio as gr
    import httpx

    def db() -> Any:
        if server.db is None:
            raise gr.Error("The server is starting or stopping.")
        return server.db

    def admit(request: Any) -> None:
        """Every action checks its caller: hiding the tabs is not what protects them."""
        refusal = admission(server, access, request)
        if refusal is not None:
            raise gr.Error(refusal)

    def admitted(request: Any) -> bool:
        return admission(server, access, request) is None

    async def gate(request: Any) -> tuple[Any, str]:
        refusal = admission(server, access, request)
        if refusal is not None:
            return gr.update(visible=False), refusal
        return gr.update(visible=True), f"Signed in as **{signed_in_user(request)}**."

    async def list_page(
        status: str | None, repo: str | None, page_no: float | None, request: Any
    ) -> tuple[Any, str]:
        if not admitted(request):  # a page load before sign-in: show nothing, say nothing
            return [], ""
        page = await db().aread(
            partial(
                inspection.list_deliveries,
                status=None if status in (None, "all") else status,
                repo=(repo or "").strip() or None,
                limit=PAGE_SIZE,
                offset=max(0, int(page_no or 1) - 1) * PAGE_SIZE,
            )
        )
        pages = max(1, -(-page["total"] // PAGE_SIZE))
        return _rows(page), f"{page['total']} deliveries, page {int(page_no or 1)} of {pages}"

    async def detail_of(delivery_id: str | None) -> Any:
        wanted = (delivery_id or "").strip()
        detail = await db().aread(partial(inspection.delivery_detail, delivery_id=wanted))
        if detail is None:
            raise gr.Error(f"No delivery with id {wanted!r}.")
        return detail

    async def open_delivery(delivery_id: str | None, request: Any) -> Any:
        admit(request)
        return await detail_of(delivery_id)

    async def replay(delivery_id: str | None, request: Any) -> Any:
        admit(request)
        wanted = (delivery_id or "").strip()
        replayed = await db().write(partial(inbox.replay, delivery_id=wanted, now=time.time()))
        if replayed is None:
            raise gr.Error(f"No delivery with id {wanted!r}.")
        if server.worker is not None:
            server.worker.wake()
        return await detail_of(delivery_id)

    async def replay_dead(request: Any) -> str:
        admit(request)
        ids = await db().write(partial(inbox.replay_dead, endpoint=None, now=time.time()))
        if server.worker is not None:
            server.worker.wake()
        return f"Replayed {len(ids)} dead deliveries."

    async def send(endpoint: str, sample: str, request: Any) -> tuple[str, str]:
        admit(request)
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

    async def schedule_table(selected: str | None) -> tuple[Any, Any]:
        items = await asyncio.to_thread(scheduling.overview, server)
        keys = [i["key"] for i in items]
        choice = selected if selected in keys else (keys[0] if keys else None)
        return _schedule_rows(items), gr.update(choices=keys, value=choice)

    async def list_schedules(selected: str | None, request: Any) -> tuple[Any, Any]:
        if not admitted(request):
            return [], gr.update(choices=[], value=None)
        return await schedule_table(selected)

    async def act_on_schedule(key: str | None, action: str, request: Any) -> tuple[str, Any, Any]:
        admit(request)
        if not key:
            raise gr.Error("Choose a schedule first.")
        try:
            done = await scheduling.act(server, key, action)
        except KeyError:
            raise gr.Error(f"No schedule {key!r}.") from None
        if action == "run":
            message = f"Started {key}" + (
                f": run {done['delivery_id']} (see Deliveries)" if "delivery_id" in done else "."
            )
        else:
            message = f"{key} {'paused' if done['paused'] else 'resumed'}."
        rows, choices = await schedule_table(key)
        return message, rows, choices

    async def run_now(key: str | None, request: Any) -> tuple[str, Any, Any]:
        return await act_on_schedule(key, "run", request)

    async def pause(key: str | None, request: Any) -> tuple[str, Any, Any]:
        return await act_on_schedule(key, "pause", request)

    async def resume(key: str | None, request: Any) -> tuple[str, Any, Any]:
        return await act_on_schedule(key, "resume", request)

    async def list_resources(request: Any) -> Any:
        admit(request)
        return _resource_rows(await asyncio.to_thread(server.resources.refresh, server))

    # Gradio injects the request by annotation; this module's annotations are strings and
    # Gradio is imported lazily, so give it the real class.
    for fn in (
        run_now,
        pause,
        resume,
        gate,
        list_page,
        open_delivery,
        replay,
        replay_dead,
        send,
        list_schedules,
        list_resources,
    ):
        fn.__annotations__["request"] = gr.Request

    hub = access.mode == "hub"
    with gr.Blocks(title="spacehooks console") as console:
        gr.Markdown("# spacehooks console")
        if hub:
            # Gradio reads the sign-in session only in apps with a LoginButton. Its own signs in
            # to the root page, so the console's buttons below target the console instead.
            gr.LoginButton(visible=False)
            with gr.Row():
                sign_in = gr.Button("Sign in with Hugging Face", elem_id="login", scale=0)
                sign_out = gr.Button("Sign out", elem_id="logout", scale=0)
            notice = gr.Markdown(elem_id="access-notice")
            # Gradio's OAuth routes live at the root (see ui.HUB_SIGN_IN), not under /console.
            sign_in.click(None, js=f"() => {{ window.location.assign({HUB_SIGN_IN!r}); }}")
            sign_out.click(
                None, js="() => { window.location.assign('/logout?_target_url=/console/'); }"
            )
        with gr.Column(visible=not hub) as body:
            if server.sandbox_url:
                gr.Markdown(
                    f"**SANDBOX**: the clients talk to the sandbox Hub at "
                    f"{server.sandbox_url}, not to huggingface.co."
                )
            with gr.Tab("Deliveries"):
                with gr.Row():
                    status = gr.Dropdown(STATUSES, value="all", label="Status", elem_id="status")
                    repo = gr.Textbox(label="Repo", placeholder="owner/name", elem_id="repo-filter")
                    page_no = gr.Number(
                        value=1, minimum=1, precision=0, label="Page", elem_id="page"
                    )
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
            with gr.Tab("Schedules"):
                schedules = gr.Dataframe(
                    headers=SCHEDULE_COLUMNS, interactive=False, elem_id="schedules"
                )
                with gr.Row():
                    schedule_key = gr.Dropdown([], label="Schedule", elem_id="schedule-key")
                    run_button = gr.Button("Run now", elem_id="run-now")
                    pause_button = gr.Button("Pause", elem_id="pause")
                    resume_button = gr.Button("Resume", elem_id="resume")
                    schedules_refresh = gr.Button("Refresh", elem_id="schedules-refresh")
                schedule_result = gr.Markdown(elem_id="schedule-result")
                schedules_refresh.click(list_schedules, [schedule_key], [schedules, schedule_key])
                for button, act in (
                    (run_button, run_now),
                    (pause_button, pause),
                    (resume_button, resume),
                ):
                    button.click(act, [schedule_key], [schedule_result, schedules, schedule_key])
            with gr.Tab("Resources"):
                gr.Markdown(
                    "The Spaces, Inference Endpoints and instances the handlers have acted on, "
                    "as the Hub and the provider report them now."
                )
                resources_refresh = gr.Button("Refresh", elem_id="resources-refresh")
                resources = gr.Dataframe(
                    headers=RESOURCE_COLUMNS, interactive=False, elem_id="resources"
                )
                resources_refresh.click(list_resources, None, [resources])
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
        if hub:
            console.load(gate, None, [body, notice])
        console.load(list_page, [status, repo, page_no], [table, summary])
        console.load(list_schedules, [schedule_key], [schedules, schedule_key])
    return console
