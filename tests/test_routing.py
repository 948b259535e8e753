from __future__ import annotations

import inspect

import pytest
from fastapi import Request

from server import DeliveryContext, Router, WebhookPayload
from server.routing import Filter, RetryPolicy, compile_injector, normalize_path
from tests.conftest import sample_json


def payload(name: str = "repo-content-main-and-tag.json", **changes) -> WebhookPayload:
    data = sample_json(name)
    data.update(changes)
    return WebhookPayload.model_validate(data)


@pytest.mark.parametrize("given", ["x", "/x", "/x/", "webhooks/x", "/webhooks/x/"])
def test_paths_normalize_like_huggingface_hub(given: str) -> None:
    assert normalize_path(given) == "/webhooks/x"


def test_empty_path_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        normalize_path("/")


def test_decorator_returns_the_function_unchanged() -> None:
    router = Router()

    def fn(payload: WebhookPayload) -> str:
        return "ran"

    assert router.on("repo")(fn) is fn
    assert fn(payload()) == "ran"
    assert router.handlers[0].path == "/webhooks/hub"


def test_filter_matches_scope_prefix_type_repo_and_refs() -> None:
    p = payload()  # repo.content on dataset some-user/some-dataset, main + a tag
    assert Filter(scopes=("repo",)).matches(p)
    assert Filter(scopes=("repo.content",), repo_types=("dataset",)).matches(p)
    assert not Filter(scopes=("repo.config",)).matches(p)
    assert not Filter(repo_types=("model",)).matches(p)
    assert Filter(repos=("some-user/*",)).matches(p)
    assert not Filter(repos=("other/*",)).matches(p)
    assert Filter(refs=("refs/heads/main",)).matches(p)
    assert Filter(refs=("refs/tags/*",)).matches(p)
    assert not Filter(refs=("refs/heads/dev",)).matches(p)
    assert not Filter(refs=("refs/heads/main",)).matches(payload("comment-create.json"))


def test_unknown_narrower_scope_matches_parent_as_update() -> None:
    p = payload("repo-config-private.json", event={"action": "create", "scope": "repo.config.dois"})
    assert Filter(scopes=("repo.config",), actions=("update",)).matches(p)
    assert Filter(scopes=("repo.config",), actions=("create",)).matches(p)
    assert not Filter(scopes=("repo.content",)).matches(p)


def test_handler_names_must_be_unique() -> None:
    router = Router()

    def fn() -> None: ...

    router.add(fn)
    with pytest.raises(ValueError, match="already registered"):
        router.add(fn)
    router.add(fn, name="second")


def test_retry_policy_backs_off_exponentially_within_jitter() -> None:
    policy = RetryPolicy(base_delay=10, jitter=0.25, max_delay=1000)
    for attempt, raw in [(1, 10), (2, 20), (3, 40), (8, 1000)]:
        for _ in range(20):
            assert raw * 0.75 <= policy.delay(attempt) <= raw * 1.25
    default = RetryPolicy()
    total = sum(default.base_delay * 2 ** (n - 1) for n in range(1, default.max_attempts))
    assert 3000 <= total <= 4200  # eight attempts over about an hour
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


PROVIDERS = [
    (Request, lambda inv, a: "REQ"),
    (DeliveryContext, lambda inv, a: "CTX"),
    (WebhookPayload, lambda inv, a: f"PAYLOAD:{a.__name__}"),
]
BY_NAME = {
    "payload": lambda inv, a: "P",
    "request": lambda inv, a: "R",
    "context": lambda inv, a: "C",
}


def test_injection_by_annotation_and_by_name() -> None:
    router = Router()

    def typed(p: WebhookPayload, r: Request, c: DeliveryContext) -> None: ...

    def named(payload, request, ctx, extra: int = 3) -> None: ...

    inject = compile_injector(router.add(typed), PROVIDERS, BY_NAME)
    assert inject(None) == {"p": "PAYLOAD:WebhookPayload", "r": "REQ", "c": "CTX"}
    inject = compile_injector(router.add(named), PROVIDERS, BY_NAME)
    assert inject(None) == {"payload": "P", "request": "R", "ctx": "C"}
    assert inspect.signature(named).parameters["extra"].default == 3


def test_uninjectable_parameter_is_a_clear_error_at_registration() -> None:
    router = Router()

    def bad(payload: WebhookPayload, repo_name: str) -> None: ...

    with pytest.raises(TypeError, match=r"cannot inject parameter 'repo_name'.*Annotate it"):
        compile_injector(router.add(bad), PROVIDERS, BY_NAME)
