from __future__ import annotations

import asyncio
import json
import threading

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from server import DeliveryContext, Router, WebhookPayload, WebhooksServer
from tests.conftest import sample, sample_json

BODY = sample("repo-content-main-and-tag.json")
SECRET = "hub-secret"


def post(client: TestClient, path: str, body: bytes = BODY, secret: str | None = SECRET, **headers):
    if secret is not None:
        headers["x-webhook-secret"] = secret
    headers.setdefault("content-type", "application/json")
    return client.post(path, content=body, headers=headers)


def unique(body: bytes = BODY, n: int = 0) -> bytes:
    """The same event with a distinct body, so duplicate suppression does not kick in."""
    data = json.loads(body)
    data["webhook"]["id"] = f"wh-{n}-{threading.get_ident()}-{id(data)}"
    return json.dumps(data).encode()


async def async_plain(payload: WebhookPayload):
    return {"kind": "async", "repo": payload.repo.name}


def sync_plain(payload: WebhookPayload):
    # Sync handlers run in the thread pool, never on the event loop.
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    return {"kind": "sync", "repo": payload.repo.name}


async def async_with_request(payload: WebhookPayload, request: Request):
    return {"kind": "async+request", "scope": (await request.json())["event"]["scope"]}


def sync_with_request(payload: WebhookPayload, request: Request):
    return {"kind": "sync+request", "path": request.url.path}


HANDLERS = [async_plain, sync_plain, async_with_request, sync_with_request]


@pytest.fixture
def client(make_settings):
    app = WebhooksServer(ui=False, webhook_secret=SECRET, settings=make_settings(), routers=[])
    for fn in HANDLERS:
        app.add_webhook(fn)
    with TestClient(app.fastapi_app) as c:
        yield c


@pytest.mark.parametrize("fn", HANDLERS, ids=lambda f: f.__name__)
def test_secret_matrix(client: TestClient, fn) -> None:
    path = f"/webhooks/{fn.__name__}"
    ok = post(client, path, unique(n=1))
    assert ok.status_code == 200
    assert ok.json()["kind"] == fn.__name__.replace("_plain", "").replace(
        "_with_request", "+request"
    )
    missing = post(client, path, unique(n=2), secret=None)
    assert missing.status_code == 401
    assert missing.json()["error"] == "x-webhook-secret header not set."
    wrong = post(client, path, unique(n=3), secret="nope")
    assert (wrong.status_code, wrong.json()) == (403, {"error": "Invalid webhook secret."})
    via_query = client.post(f"{path}?secret={SECRET}", content=unique(n=4))
    assert via_query.status_code == 200


def test_request_is_the_received_one_without_the_secret(client: TestClient) -> None:
    r = post(client, "/webhooks/sync_with_request", unique(n=5))
    assert r.json()["path"] == "/webhooks/sync_with_request"


def test_open_endpoints_when_no_secret(make_settings, caplog) -> None:
    app = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    assert "WEBHOOK_SECRET is not set" in caplog.text

    @app.add_webhook
    def anyone(payload: WebhookPayload):
        return "ok"

    with TestClient(app.fastapi_app) as c:
        assert post(c, "/webhooks/anyone", secret=None).json() == "ok"


def test_implicit_and_explicit_paths_and_function_returned(make_settings) -> None:
    app = WebhooksServer(ui=False, settings=make_settings(), routers=[])

    def implicit(payload: WebhookPayload):
        return 1

    assert app.add_webhook(implicit) is implicit
    decorated = app.add_webhook("/explicit/")(lambda payload: 2)
    assert callable(decorated)
    app.add_webhook(path="nested/name")(lambda: 3)
    assert app.router.paths() == [
        "/webhooks/explicit",
        "/webhooks/implicit",
        "/webhooks/nested/name",
    ]
    with TestClient(app.fastapi_app) as c:
        assert post(c, "/webhooks/implicit", secret=None).json() == 1
        assert post(c, "/webhooks/explicit", secret=None).json() == 2
        assert post(c, "/webhooks/nested/name", secret=None).json() == 3


def test_duplicate_path_raises_value_error(make_settings) -> None:
    app = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    app.add_webhook("/same")(lambda: 1)
    with pytest.raises(ValueError, match="/webhooks/same already exists"):
        app.add_webhook("same")(lambda: 2)


def test_on_handlers_share_an_endpoint_and_filter(make_settings) -> None:
    router = Router()
    seen: list[str] = []

    @router.on("repo.content", repo_type="dataset", refs=["refs/heads/main"])
    def on_data(payload: WebhookPayload):
        seen.append("data")
        return "data"

    @router.on("repo.config")
    def on_config(payload: WebhookPayload, ctx: DeliveryContext):
        seen.append("config")
        return {"attempt": ctx.attempt}

    @router.on("discussion", action="create")
    async def on_new_discussion(payload: WebhookPayload):
        seen.append("discussion")

    app = WebhooksServer(ui=False, settings=make_settings(), routers=[router])
    with TestClient(app.fastapi_app) as c:
        assert post(c, "/webhooks/hub", secret=None).json() == "data"
        dois = sample_json("repo-config-private.json")
        dois["event"]["scope"] = "repo.config.dois"
        assert post(c, "/webhooks/hub", json.dumps(dois).encode(), secret=None).json() == {
            "attempt": 1
        }
        closed = post(c, "/webhooks/hub", sample("discussion-update-closed.json"), secret=None)
        assert closed.status_code == 200
        assert closed.json()["handled"] is False and closed.json()["delivery_id"]
        assert (
            post(c, "/webhooks/hub", sample("discussion-create-pr.json"), secret=None).json()
            is None
        )
    assert seen == ["data", "config", "discussion"]


def test_several_matching_handlers_give_all_results(make_settings) -> None:
    router = Router()
    router.on("repo", name="first")(lambda payload: 1)
    router.on("repo.content", name="second")(lambda payload: 2)
    app = WebhooksServer(ui=False, settings=make_settings(), routers=[router])
    with TestClient(app.fastapi_app) as c:
        body = post(c, "/webhooks/hub", secret=None).json()
    assert body["results"] == {"first": 1, "second": 2}


def test_add_webhook_path_cannot_be_shared_with_on_handlers(make_settings) -> None:
    router = Router()
    router.on("repo", path="/shared")(lambda payload: 1)
    app = WebhooksServer(ui=False, settings=make_settings(), routers=[router])
    with pytest.raises(ValueError, match="already exists"):
        app.add_webhook("/shared")(lambda: 2)


def test_uninjectable_handler_fails_at_start_not_at_first_event(make_settings) -> None:
    app = WebhooksServer(ui=False, settings=make_settings(), routers=[])

    @app.add_webhook
    def bad(payload: WebhookPayload, repo: str): ...

    with (
        pytest.raises(TypeError, match="cannot inject parameter 'repo'"),
        TestClient(app.fastapi_app),
    ):
        pass


# -- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def strict_client(make_settings):
    app = WebhooksServer(
        ui=False,
        webhook_secret=SECRET,
        settings=make_settings(SPACEHOOKS_MAX_BODY_BYTES="4096"),
        routers=[],
    )
    app.add_webhook("/strict")(lambda payload: "ok")
    with TestClient(app.fastapi_app) as c:
        yield c


def test_not_json_is_400(strict_client: TestClient) -> None:
    r = post(strict_client, "/webhooks/strict", b"{not json")
    assert (r.status_code, r.json()["error"]) == (400, "Body is not valid JSON.")
    r = post(strict_client, "/webhooks/strict", b"\xff\xfe")
    assert r.status_code == 400


def test_wrong_content_type_is_400_naming_the_fix(strict_client: TestClient) -> None:
    r = post(strict_client, "/webhooks/strict", BODY, **{"content-type": "text/plain"})
    assert r.status_code == 400 and "application/json" in r.json()["error"]


def test_invalid_payload_is_422_naming_fields(strict_client: TestClient) -> None:
    data = sample_json("comment-create.json")
    del data["repo"]["name"]
    data["discussion"]["num"] = "four"
    r = post(strict_client, "/webhooks/strict", json.dumps(data).encode())
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["fields"]} == {"repo.name", "discussion.num"}
    r = post(strict_client, "/webhooks/strict", b"[1, 2]")
    assert r.status_code == 422


def test_oversized_body_is_413_by_header_and_by_stream(strict_client: TestClient) -> None:
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    r = post(strict_client, "/webhooks/strict", big)
    assert r.status_code == 413 and "4096" in r.json()["error"]

    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(100):
            yield b"x" * 1000

    r = strict_client.post(
        "/webhooks/strict", content=chunks(), headers={"x-webhook-secret": SECRET}
    )
    assert r.status_code == 413


def test_unknown_path_is_404_listing_the_webhooks(strict_client: TestClient) -> None:
    r = post(strict_client, "/webhooks/nope")
    assert r.status_code == 404 and r.json()["webhooks"] == ["/webhooks/strict"]


def test_a_request_only_handler_accepts_any_json(make_settings) -> None:
    # huggingface_hub's handlers that only take `request` receive any JSON body.
    app = WebhooksServer(ui=False, settings=make_settings(), routers=[])

    @app.add_webhook
    async def raw(request: Request):
        return (await request.json())["custom"]

    with TestClient(app.fastapi_app) as c:
        r = post(c, "/webhooks/raw", b'{"custom": "sender"}', secret=None)
    assert r.json() == "sender"


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
        st.just(BODY),
    ),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-webhook-secret",
                "content-type",
                "content-length",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "x-anything",
                "transfer-encoding",
            ]
        ),
        header_text,
        max_size=5,
    ),
    query=st.dictionaries(st.sampled_from(["secret", "a", ""]), header_text, max_size=3),
    with_secret=st.booleans(),
)
def test_fuzz_no_input_causes_a_5xx(
    strict_client: TestClient, body, headers, query, with_secret
) -> None:
    headers = {k: v for k, v in headers.items() if k not in ("content-length", "transfer-encoding")}
    if with_secret:
        headers["x-webhook-secret"] = SECRET
    r = strict_client.post("/webhooks/strict", content=body, headers=headers, params=query)
    assert r.status_code < 500, (r.status_code, r.text)
    assert "Traceback" not in r.text


def test_query_of_a_stored_delivery_keeps_its_values_and_drops_the_secret(make_settings) -> None:
    app = WebhooksServer(ui=False, webhook_secret=SECRET, settings=make_settings(), routers=[])

    @app.add_webhook
    def echo_query(request: Request):
        return dict(request.query_params)

    with TestClient(app.fastapi_app) as c:
        r = c.post(
            "/webhooks/echo_query",
            content=BODY,
            params={"secret": SECRET, "tag": "a&b=c", "n": "1"},
        )
    assert r.json() == {"tag": "a&b=c", "n": "1"}
