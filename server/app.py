"""`WebhooksServer`: the FastAPI app that receives webhooks, and its lifecycle.

huggingface_hub's API works unchanged (`WebhooksServer(ui=..., webhook_secret=...)`,
`@app.add_webhook`, `@app.add_webhook("/path")`, `.launch()`, module-level `@webhook_endpoint`),
on an app spacehooks owns: `app.fastapi_app` exists from construction, the database, the worker
and the Gradio UI start and stop in its lifespan, and Gradio is mounted into it (lazily, so
webhooks are answered before Gradio has finished importing).

The path of one request is in `intake.py`; storing a delivery and starting its jobs (`accept`)
is here, shared with scheduled runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel

from . import inbox, security
from .audit import Audit, Sink, State
from .client import HubClient
from .client.instances import InstancesClient
from .context import DeliveryContext, ScheduledRun
from .db import Database
from .inbox import Accepted, ClaimedJob, Incoming
from .intake import WebhookRoute
from .invocation import Invocation
from .metrics import Metrics
from .payload import WebhookPayload
from .resources import Resources
from .routing import (
    Filter,
    Handler,
    Router,
    compile_injector,
    default_router,
    normalize_path,
    wants_payload,
)
from .scheduling import Scheduler, run_request
from .settings import Settings
from .worker import JobOutcome, Worker

__all__ = ["WebhooksServer"]

log = logging.getLogger("spacehooks")
F = TypeVar("F", bound=Callable[..., Any])


class WebhooksServer:
    """A webhook server for the Hub: durable, retried, filtered; a drop-in for huggingface_hub's.

    Args:
        ui: a `gradio.Blocks` landing page; None for spacehooks' own; False for no UI.
        webhook_secret: the shared secret; defaults to the `WEBHOOK_SECRET` variable.
        settings: configuration; read from the environment when not given.
        routers: routers whose handlers to serve; defaults to `[default_router]` (module-level
            `@on`), so `handlers/` modules register without extra wiring.
        schemes: which sender proofs the endpoints accept (`"hub"`, `"standard"`).
    """

    def __init__(
        self,
        ui: Any = None,
        webhook_secret: str | None = None,
        *,
        settings: Settings | None = None,
        routers: Iterable[Router] | None = None,
        schemes: Iterable[str] = security.DEFAULT_SCHEMES,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.webhook_secret = webhook_secret or self.settings.secret
        self._check_secret()
        unknown = set(schemes) - security.SCHEMES
        if unknown:
            raise ValueError(f"Unknown webhook schemes {sorted(unknown)!r}; use 'hub', 'standard'.")
        self.schemes = frozenset(schemes)
        self._ui = ui
        self.router = Router()
        self._exclusive: set[str] = set()  # paths owned by one add_webhook handler
        for router in [default_router] if routers is None else routers:
            self.include_router(router)
        #: extra injectable types: (type, provider(invocation, annotation)), e.g. clients.
        self.providers: list[tuple[type, Callable[[Invocation, Any], Any]]] = [
            (HubClient, lambda _inv, _a: self.hub),
            (InstancesClient, lambda _inv, _a: self.instances),
            (
                Audit,
                lambda inv, _a: Audit(
                    self._database(), inv.context, inv.job.handler, self.audit_sinks
                ),
            ),
            (State, lambda _inv, _a: State(self._database())),
        ]
        self._hub: HubClient | None = None
        self._instances: InstancesClient | None = None
        self._clients_lock = threading.Lock()  # sync handlers may ask from several threads
        self.metrics = Metrics()
        #: where audit entries go besides the database (see audit.py)
        self.audit_sinks: list[Sink] = []
        #: the Spaces, endpoints and instances the clients acted on (the console's Resources)
        self.resources = Resources()
        self.db: Database | None = None
        self.worker: Worker | None = None
        self.scheduler: Scheduler | None = None
        self._launched = False  # set once `webhook_endpoint`'s shared server has been launched
        #: the embedded sandbox Hub's URL when one is in use (no HF_TOKEN): shown as a banner
        self.sandbox_url: str | None = None
        #: where `serve` binds, and whether it opens a public tunnel (None: not known, e.g. under
        #: plain uvicorn); the console opens without a token only on a known loopback bind
        self.bind_host: str | None = None
        self.tunneled = False
        self._injectors: dict[str, Callable[[Invocation], dict[str, Any]]] = {}
        #: per webhook path: its handlers, and whether its payloads must validate (by _compile)
        self.endpoints: dict[str, tuple[list[Handler], bool]] = {}
        self.fastapi_app = self._build_app()

    @property
    def hub(self) -> HubClient:
        """The server's one Hub client (what `hub: HubClient` parameters receive)."""
        with self._clients_lock:
            return self._hub_client()

    def _hub_client(self) -> HubClient:
        if self._hub is None:
            token = self.settings.hf_token
            self._hub = HubClient(
                self.settings.hf_endpoint,
                token.get_secret_value() if token else False,
                env={},  # configuration comes from Settings alone
            )
            self._hub._http.observer = self._observer("hub")
            self._hub._ie.observer = self._observer("inference-endpoints")
        return self._hub

    @property
    def instances(self) -> InstancesClient:
        """The server's one instance-provider client (`instances: InstancesClient`)."""
        with self._clients_lock:
            return self._instances_client()

    def _instances_client(self) -> InstancesClient:
        if self._instances is None:
            s = self.settings
            secret = s.cortecs_client_secret
            self._instances = InstancesClient(
                s.cortecs_client_id,
                secret.get_secret_value() if secret else None,
                base_url=s.cortecs_api_base_url,
                max_hourly_cost=s.max_hourly_cost,
                env={},  # configuration comes from Settings alone
            )
            self._instances._http.observer = self._observer("instances")
        return self._instances

    def _database(self) -> Database:
        if self.db is None:
            raise RuntimeError("The server is not running: its database is closed.")
        return self.db

    def _observer(self, service: str) -> Callable[[str, str, int], None]:
        """What the clients report each answer to: the metrics, and the Resources tab."""
        count, note = self.metrics.observer(service), self.resources.observer(service)

        def observe(method: str, path: str, status: int) -> None:
            count(method, path, status)
            note(method, path, status)

        return observe

    def _check_secret(self) -> None:
        if self.webhook_secret is None:
            self.settings.check_security()

    def __repr__(self) -> str:
        secret = "set" if self.webhook_secret else "none"
        return f"WebhooksServer(paths={self.router.paths()!r}, secret={secret})"

    # -- registration --------------------------------------------------------------------------

    def add_webhook(self, path: str | Callable[..., Any] | None = None) -> Callable[[F], F]:
        """Serve the decorated function at `/webhooks/<path or function name>`, for every event.

        Usable bare (`@app.add_webhook`) or with a path (`@app.add_webhook("/retrain")`).
        A path may have one such handler; a second raises ValueError. Returns the function.
        """
        if callable(path):
            return self.add_webhook()(path)  # type: ignore[return-value]

        def register(fn: F) -> F:
            abs_path = normalize_path(path or fn.__name__)
            if abs_path in self.router.paths():
                raise ValueError(f"Webhook {abs_path} already exists.")
            self.router.add(fn, path=abs_path, name=f"{abs_path}:{_qualname(fn)}")
            self._exclusive.add(abs_path)
            return fn

        return register

    def on(self, scope: str | list[str] | None = None, **kwargs: Any) -> Callable[[F], F]:
        """`server.on` for this app only (same arguments)."""
        return self.router.on(scope, **kwargs)

    def schedule(self, cron: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        """Run the decorated function on a schedule, for this app only (see `Router.schedule`):
        ``@app.schedule(cron="0 22 * * *", timezone="Europe/Paris")`` or
        ``@app.schedule(every=timedelta(minutes=15))``."""
        return self.router.schedule(cron, **kwargs)

    def include_router(self, router: Router) -> None:
        for handler in router.handlers:
            if handler.path in self._exclusive:
                raise ValueError(f"Webhook {handler.path} already exists.")
        self.router.include(router)

    # -- the FastAPI app -----------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        from . import api, ui

        app = FastAPI(
            title="spacehooks",
            lifespan=self._lifespan,
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
        )
        # The webhook path is the hot path and needs none of FastAPI's routing, dependency and
        # exception layers: a thin ASGI layer serves it, inside Starlette's error safety net.
        app.add_middleware(WebhookRoute, server=self)
        api.install(app, self)
        self._lazy_ui = ui.LazyUI()
        if self._ui is not False:
            app.mount("/", self._lazy_ui)
        return app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self._compile()
        self.db = Database(self.settings.database_url())
        await asyncio.to_thread(self.db.create_schema)
        self.db.start_writer()
        self.resources.attach(self.db)
        handlers = {h.name: h for h in self.router.handlers}
        handlers.update((s.handler.name, s.handler) for s in self.router.schedules)
        self.worker = Worker(self.db, self.settings, handlers, self._invoke, self.metrics)
        await self.worker.start()
        self.scheduler = Scheduler(
            self.db,
            self.router.schedules,
            self.run_schedule,
            asyncio.get_running_loop(),
            leader_interval=self.settings.leader_interval,
        )
        await asyncio.to_thread(self.scheduler.start)
        for hook in self.router.startup:
            await self._run_start_hook(hook)
        async with contextlib.AsyncExitStack() as stack:
            ui_task = None
            if self._ui is not False:
                ui_task = asyncio.create_task(self._lazy_ui.load(self, stack))
            log.info(
                "spacehooks ready: %s; %d schedule(s)",
                ", ".join(self.router.paths()) or "no webhooks",
                len(self.router.schedules),
            )
            try:
                yield
            finally:
                if ui_task is not None:
                    ui_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await ui_task
                await self._shut_down()

    async def _run_start_hook(self, hook: Handler) -> None:
        kwargs = self._injectors[hook.name](None)
        try:
            if hook.is_async:
                await hook.fn(**kwargs)
            else:
                await asyncio.to_thread(hook.fn, **kwargs)
        except Exception:
            log.exception("start hook %s failed; the server runs on without it", hook.name)

    async def _shut_down(self) -> None:
        """Stop taking work, let running jobs finish within the grace period, push every
        CommitScheduler one last time; what could not finish runs at the next start."""
        assert self.db is not None and self.worker is not None and self.scheduler is not None
        started = time.monotonic()
        await asyncio.to_thread(self.scheduler.stop)
        await self.worker.stop()
        from . import commit_scheduler

        left = max(1.0, self.settings.shutdown_grace - (time.monotonic() - started))
        await asyncio.to_thread(commit_scheduler.final_push_all, left)
        self.resources.attach(None)
        await asyncio.to_thread(self.db.close)

    def _compile(self) -> None:
        """Check every handler's parameters once, before the first request."""
        providers: list[tuple[type, Callable[[Invocation, Any], Any]]] = [
            (Request, lambda inv, _a: inv.request),
            (DeliveryContext, lambda inv, _a: inv.context),
            (BaseModel, lambda inv, model: inv.payload(model or WebhookPayload)),
            *self.providers,
        ]
        by_name = {
            "payload": lambda inv, _a: inv.payload(),
            "request": lambda inv, _a: inv.request,
            "context": lambda inv, _a: inv.context,
        }
        self._injectors = {
            h.name: compile_injector(h, providers, by_name) for h in self.router.handlers
        }
        # Scheduled functions: the same clients and context, a ScheduledRun; no request.
        run_providers: list[tuple[type, Callable[[Invocation, Any], Any]]] = [
            (DeliveryContext, lambda inv, _a: inv.context),
            (ScheduledRun, lambda inv, _a: inv.payload(ScheduledRun)),
            *self.providers,
        ]
        run_by_name = {"context": by_name["context"]}
        for scheduled in self.router.schedules:
            h = scheduled.handler
            self._injectors[h.name] = compile_injector(h, run_providers, run_by_name)
        # Start hooks: the clients, State, the server itself (no run, so no context or audit).
        start_providers: list[tuple[type, Callable[[Invocation, Any], Any]]] = [
            (WebhooksServer, lambda _inv, _a: self),
            (HubClient, lambda _inv, _a: self.hub),
            (InstancesClient, lambda _inv, _a: self.instances),
            (State, lambda _inv, _a: State(self._database())),
        ]
        for h in self.router.startup:
            self._injectors[h.name] = compile_injector(h, start_providers, {})
        # Per endpoint, decided once: its handlers, and whether its payloads must validate
        # (a handler reads the payload or filters on it); the webhook route only looks it up.
        self.endpoints = {}
        for path in self.router.paths():
            handlers = self.router.for_path(path)
            strict = any(wants_payload(h) or h.filter != Filter() for h in handlers)
            self.endpoints[path] = (handlers, strict)

    async def _invoke(self, handler: Handler, job: ClaimedJob) -> Any:
        assert self.worker is not None
        kwargs = self._injectors[handler.name](Invocation(job, self.fastapi_app))
        return await self.worker.call(handler, kwargs)

    async def run_schedule(
        self, name: str, scheduled_for: float | None = None, *, wait: bool = True
    ) -> str:
        """Store one run of schedule `name` (due at `scheduled_for`; None: now, by hand) and
        start it; returns the run's delivery id, once its first attempt has ended if `wait`."""
        stored, tasks = await self.accept(run_request(name, scheduled_for))
        if isinstance(stored, inbox.Duplicate):
            log.info("schedule %s: this run was already stored as %s", name, stored.delivery_id)
            return stored.delivery_id
        if tasks and wait:
            await asyncio.wait(tasks.values())
        return stored.delivery_id

    # -- the webhook route ---------------------------------------------------------------------

    async def accept(
        self, item: Incoming
    ) -> tuple[Accepted | inbox.Duplicate, dict[str, asyncio.Task[JobOutcome]]]:
        """Store a delivery durably (or recognise a duplicate) and start its jobs at once; returns
        the stored record and a task per handler name resolving to its first attempt's outcome."""
        assert self.db is not None and self.worker is not None
        request = inbox.StoreRequest(
            item, self.worker.id, self.settings.dedupe_window, self.settings.claim_ttl
        )
        stored = await self.db.write_item(inbox.store_many, request)
        if not isinstance(stored, Accepted) or not stored.job_ids:
            return stored, {}
        claimed = [
            ClaimedJob(
                job_id=job_id,
                delivery_id=stored.delivery_id,
                handler=name,
                attempt=1,
                budget_start=0,
                endpoint=item.endpoint,
                headers=item.headers,
                query=item.query,
                body=item.body,
                received_at=item.received_at,
                started_at=time.time(),
            )
            for name, job_id in stored.job_ids.items()
        ]
        tasks = self.worker.launch(claimed)
        return stored, {name: tasks[job_id] for name, job_id in stored.job_ids.items()}

    # -- running -------------------------------------------------------------------------------

    def launch(self, prevent_thread_lock: bool = False, **launch_kwargs: Any) -> None:
        """Serve the app (blocking unless `prevent_thread_lock`), like huggingface_hub's launch.

        Understands gradio's `server_name`, `server_port` and `share`; other keyword arguments
        are accepted and ignored.
        """
        from .serving import serve

        serve(
            self,
            host=launch_kwargs.get("server_name"),
            port=launch_kwargs.get("server_port"),
            share=bool(launch_kwargs.get("share", False)),
            block=not prevent_thread_lock,
        )


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
