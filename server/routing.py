"""The handler registry: which function runs for which event, on which path.

A `Router` is plain data. Its decorators register a function and return it unchanged, so a
handler stays an ordinary function that a unit test can call with hand-built arguments. Routers
compose: each module of `handlers/` may hold its own, and the app merges them; the module-level
`on` registers into `default_router`, which every `WebhooksServer` includes unless told not to.

What a handler receives is decided once, at registration, from its annotations (see
`compile_injector`); nothing rewrites its signature.
"""

from __future__ import annotations

import fnmatch
import inspect
import random
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .payload import WebhookPayload, scope_matches

if TYPE_CHECKING:
    from .scheduling import Scheduled

__all__ = [
    "DEFAULT_PATH",
    "Filter",
    "Handler",
    "RetryPolicy",
    "Router",
    "default_router",
    "normalize_path",
    "on",
    "schedule",
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PATH = "/webhooks/hub"


def normalize_path(path: str) -> str:
    """`"x"`, `"/x"`, `"/x/"` and `"/webhooks/x"` all mean `/webhooks/x` (as huggingface_hub)."""
    name = path.strip("/")
    if name.startswith("webhooks/"):
        name = name[len("webhooks/") :]
    if not name:
        raise ValueError(f"Webhook path {path!r} is empty: give a name such as 'retrain'.")
    return f"/webhooks/{name}"


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing job is retried: exponential backoff with jitter, then dead.

    The defaults give 8 attempts spread over about an hour (30 s, 1 min, 2 min, ... 32 min).
    """

    max_attempts: int = 8
    base_delay: float = 30.0
    max_delay: float = 3600.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}.")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("Retry delays cannot be negative.")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        raw = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        spread = raw * self.jitter
        return max(0.0, raw + (rng or random).uniform(-spread, spread))


@dataclass(frozen=True)
class Filter:
    """What a handler reacts to. Empty fields match everything; values may be glob patterns."""

    scopes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    repo_types: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()

    def matches(self, payload: WebhookPayload) -> bool:
        _, action = payload.event.effective
        if self.scopes and not any(scope_matches(payload.event.scope, s) for s in self.scopes):
            return False
        if self.actions and action not in self.actions and payload.event.action not in self.actions:
            return False
        if self.repo_types and payload.repo.type not in self.repo_types:
            return False
        if self.repos and not any(fnmatch.fnmatchcase(payload.repo.name, p) for p in self.repos):
            return False
        if self.refs:
            updated = [ref.ref for ref in payload.updatedRefs or ()]
            if not any(fnmatch.fnmatchcase(r, p) for r in updated for p in self.refs):
                return False
        return True


@dataclass(frozen=True)
class Handler:
    """One registered function and what it reacts to."""

    fn: Callable[..., Any]
    path: str
    name: str
    filter: Filter = field(default_factory=Filter)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # (parameter name, annotation or None): what to inject, resolved by the app.
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


def _handler_name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _params(fn: Callable[..., Any]) -> tuple[tuple[str, Any], ...]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    out = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = None
        out.append((name, annotation))
    return tuple(out)


class Router:
    """Handlers and schedules. Decorators register and return the function unchanged."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []
        self.schedules: list[Scheduled] = []
        self.startup: list[Handler] = []

    def add(
        self,
        fn: Callable[..., Any],
        *,
        path: str = DEFAULT_PATH,
        filter: Filter | None = None,
        retry: RetryPolicy | None = None,
        name: str | None = None,
    ) -> Handler:
        """Register `fn` and return its `Handler` record."""
        if not callable(fn):
            raise TypeError(f"A webhook handler must be callable, got {fn!r}.")
        handler = Handler(
            fn=fn,
            path=normalize_path(path),
            name=name or _handler_name(fn),
            filter=filter or Filter(),
            retry=retry or RetryPolicy(),
            params=_params(fn),
        )
        if any(h.name == handler.name for h in self.handlers):
            raise ValueError(
                f"A handler named {handler.name!r} is already registered; "
                "give one of them name=... (job records are keyed by it)."
            )
        self.handlers.append(handler)
        return handler

    def on(
        self,
        scope: str | Sequence[str] | None = None,
        *,
        action: str | Sequence[str] | None = None,
        repo_type: str | Sequence[str] | None = None,
        repos: str | Sequence[str] | None = None,
        refs: str | Sequence[str] | None = None,
        path: str = DEFAULT_PATH,
        retry: RetryPolicy | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Run the decorated function for the events that match.

        `scope` matches by dotted prefix (`"repo"` also gets `repo.content`); `repos` and `refs`
        accept glob patterns (`"acme/*"`, `"refs/heads/*"`). Handlers share one endpoint,
        `/webhooks/hub`, unless they name a `path`.
        """
        flt = Filter(
            scopes=_as_tuple(scope),
            actions=_as_tuple(action),
            repo_types=_as_tuple(repo_type),
            repos=_as_tuple(repos),
            refs=_as_tuple(refs),
        )

        def register(fn: F) -> F:
            self.add(fn, path=path, filter=flt, retry=retry, name=name)
            return fn

        return register

    def schedule(
        self,
        cron: str | None = None,
        *,
        every: timedelta | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        retry: RetryPolicy | None = None,
        misfire_grace_time: float | None = 300.0,
    ) -> Callable[[F], F]:
        """Run the decorated function on a schedule: `cron` (5 crontab fields, or 6 with seconds
        first) in `timezone`, or `every` interval. See `server.scheduling`.

        It gets the same injection as a webhook handler (clients, `DeliveryContext`), plus a
        `ScheduledRun`; failed runs are retried with `retry`. A run missed while no process was
        up runs at start if it is less than `misfire_grace_time` seconds late (None: always).
        """
        from .scheduling import ENDPOINT_PREFIX, Scheduled
        from .timing import make_timing

        timing = make_timing(cron, every, timezone, misfire_grace_time)

        def register(fn: F) -> F:
            if not callable(fn):
                raise TypeError(f"A scheduled function must be callable, got {fn!r}.")
            key = ENDPOINT_PREFIX + (name or _handler_name(fn))
            if len(key) > 180:
                raise ValueError(f"Schedule name {key!r} is too long: give a shorter name=...")
            handler = Handler(
                fn=fn, path=key, name=key, retry=retry or RetryPolicy(), params=_params(fn)
            )
            self._add_schedule(Scheduled(handler, timing))
            return fn

        return register

    def _add_schedule(self, scheduled: Scheduled) -> None:
        if any(s.handler.name == scheduled.handler.name for s in self.schedules):
            raise ValueError(
                f"A schedule named {scheduled.name!r} is already registered; give one of them "
                "name=... (its runs and stored next run are keyed by it)."
            )
        self.schedules.append(scheduled)

    def on_start(self, fn: F) -> F:
        """Call the decorated function once the server has started (its database, clients and
        scheduler ready), e.g. to start a CommitScheduler with the server's Hub client. It may
        ask for the clients, `State`, or the `WebhooksServer` itself. An error is logged; the
        server keeps running."""
        self.startup.append(
            Handler(fn=fn, path="start:", name=f"start:{_handler_name(fn)}", params=_params(fn))
        )
        return fn

    def include(self, other: Router) -> None:
        """Take in every handler and schedule of `other` (checked again for name clashes)."""
        for handler in other.handlers:
            if any(h.name == handler.name for h in self.handlers):
                raise ValueError(f"A handler named {handler.name!r} is registered twice.")
            self.handlers.append(handler)
        for scheduled in other.schedules:
            self._add_schedule(scheduled)
        self.startup.extend(other.startup)

    def paths(self) -> list[str]:
        return sorted({h.path for h in self.handlers})

    def for_path(self, path: str) -> list[Handler]:
        return [h for h in self.handlers if h.path == path]


#: The router that module-level `@on` and `@schedule` fill; `WebhooksServer` includes it by
#: default.
default_router = Router()
on = default_router.on
schedule = default_router.schedule


# -- injection ---------------------------------------------------------------------------------

#: Builds one argument from the run at hand (an `Invocation`, defined by the app) and the
#: parameter's annotation (None when it has none).
Provider = Callable[[Any, Any], Any]

# Unannotated parameters with these names get what huggingface_hub users expect.
_BY_NAME = {"payload": "payload", "request": "request", "ctx": "context", "context": "context"}


def compile_injector(
    handler: Handler,
    providers: Sequence[tuple[type, Provider]],
    by_name: dict[str, Provider],
) -> Callable[[Any], dict[str, Any]]:
    """Decide once how to build each argument of `handler`; raise TypeError if one cannot be.

    `providers` maps a type to the function that builds it; a parameter annotated with that type
    or a subclass of it gets it (the first match wins, so order specific types first).
    Unannotated parameters named ``payload``, ``request`` or ``ctx`` are injected by name.
    A parameter with a default that matches nothing keeps its default.
    """
    plan: list[tuple[str, Provider, Any]] = []
    sig = inspect.signature(handler.fn)
    for name, annotation in handler.params:
        provider = None
        if isinstance(annotation, type):
            provider = next((p for t, p in providers if issubclass(annotation, t)), None)
        elif annotation is None and name in _BY_NAME:
            provider = by_name.get(_BY_NAME[name])
        if provider is None:
            if sig.parameters[name].default is not inspect.Parameter.empty:
                continue
            known = ", ".join(t.__name__ for t, _ in providers)
            raise TypeError(
                f"Handler {handler.name!r}: cannot inject parameter {name!r}"
                f"{f' of type {annotation!r}' if annotation is not None else ''}. "
                f"Annotate it with one of: {known}; or give it a default."
            )
        plan.append((name, provider, annotation))

    def build(invocation: Any) -> dict[str, Any]:
        return {name: provider(invocation, annotation) for name, provider, annotation in plan}

    return build


def wants_payload(handler: Handler) -> bool:
    """Whether the handler reads the parsed payload (so the endpoint must validate it)."""
    from pydantic import BaseModel

    for name, annotation in handler.params:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return True
        if annotation is None and name == "payload":
            return True
    return False
