"""The Spaces, Inference Endpoints and instances the handlers act on, for the console.

The embedded clients report every answer (method, path, status). A successful call on a Space
(``/api/spaces/<owner>/<name>/...``) or an Inference Endpoint (``/endpoint/<ns>/<name>``) marks
it as touched; instance calls carry their ids in request bodies, so any successful call to the
provider marks "instances" as in use and a refresh lists the account's instances. What was
touched is remembered in the database, so the list survives restarts.

`refresh` asks the Hub and the provider for each resource's state now: stage or status,
hardware, replicas or workers, and the hourly cost where the price is known.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .client import NotFound
from .db import Database, touched_resources
from .timing import duration_text

if TYPE_CHECKING:
    from .app import WebhooksServer

__all__ = ["Resources"]

log = logging.getLogger("spacehooks.resources")

_SPACE = re.compile(r"^/api/spaces/([^/]+/[^/]+)/")
_ENDPOINT = re.compile(r"/endpoint/([^/]+/[^/]+)(?:/|$)")
_NOT_SPACES = {"hardware"}  # /api/spaces/hardware is a catalogue, not a Space


class Resources:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._db: Database | None = None

    def attach(self, db: Database | None) -> None:
        """Remember touched resources in `db` from now on (None: in memory only)."""
        self._db = db

    def observer(self, service: str) -> Callable[[str, str, int], None]:
        """A callback for `HttpClient.observer` noting what `service`'s calls touched."""

        def observe(method: str, path: str, status: int) -> None:
            if status >= 400:
                return
            if service == "instances":
                if not path.startswith("/oauth2/"):
                    self.touch("instances", "*")
                return
            space = _SPACE.match(path)
            if space and space.group(1).split("/")[0] not in _NOT_SPACES:
                self.touch("space", space.group(1))
                return
            endpoint = _ENDPOINT.search(path) if service == "inference-endpoints" else None
            if endpoint:
                self.touch("endpoint", endpoint.group(1))

        return observe

    def touch(self, kind: str, ident: str) -> None:
        now = time.time()
        with self._lock:
            first = (kind, ident) not in self._seen
            self._seen[(kind, ident)] = now
        if first and self._db is not None:
            with contextlib.suppress(RuntimeError):  # the writer is stopped: memory will do
                self._db.submit(lambda conn: _remember(conn, kind, ident, now))

    def forget(self, kind: str, ident: str) -> None:
        with self._lock:
            self._seen.pop((kind, ident), None)
        if self._db is not None:
            key = (touched_resources.c.kind == kind) & (touched_resources.c.ident == ident)
            self._db.submit(lambda conn: conn.execute(touched_resources.delete().where(key)))

    def touched(self) -> dict[tuple[str, str], float]:
        """(kind, ident) -> last touched, from this process and the database."""
        found: dict[tuple[str, str], float] = {}
        if self._db is not None:
            with self._db.engine.connect() as conn:
                for row in conn.execute(sa.select(touched_resources)):
                    found[(row.kind, row.ident)] = row.touched_at
        with self._lock:
            for key, at in self._seen.items():
                found[key] = max(at, found.get(key, 0.0))
        return found

    def refresh(self, server: WebhooksServer) -> list[dict[str, Any]]:
        """The current state of every touched resource (blocking: run it in a thread)."""
        rows: list[dict[str, Any]] = []
        touched = self.touched()
        prices: dict[str, float] | None = None
        for (kind, ident), at in sorted(touched.items()):
            try:
                if kind == "space":
                    if prices is None:
                        prices = _space_prices(server)
                    rows.append(_space_row(server, ident, prices))
                elif kind == "endpoint":
                    rows.append(_endpoint_row(server, ident))
                elif kind == "instances":
                    rows.extend(_instance_rows(server))
                    continue
            except NotFound:  # deleted since (a preview Space, say): no longer a resource
                self.forget(kind, ident)
                continue
            except Exception as exc:  # one resource's error must not hide the others
                rows.append(
                    {"kind": kind, "id": ident, "status": f"error: {type(exc).__name__}: {exc}"}
                )
            rows[-1]["touched_at"] = at
        return rows


def _remember(conn: sa.Connection, kind: str, ident: str, at: float) -> None:
    key = (touched_resources.c.kind == kind) & (touched_resources.c.ident == ident)
    conn.execute(touched_resources.delete().where(key))
    conn.execute(touched_resources.insert().values(kind=kind, ident=ident, touched_at=at))


def _space_prices(server: WebhooksServer) -> dict[str, float]:
    try:
        return server.hub.space_hardware_prices()
    except Exception as exc:
        log.warning("could not read the Space hardware prices: %s", exc)
        return {}


def _space_row(server: WebhooksServer, repo_id: str, prices: dict[str, float]) -> dict[str, Any]:
    runtime = server.hub.get_space_runtime(repo_id)
    hardware = runtime.hardware or runtime.requested_hardware
    running = runtime.stage in ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING")
    cost = prices.get(hardware or "") if running else 0.0
    shown = hardware or "-"
    if runtime.requested_hardware and runtime.requested_hardware != runtime.hardware:
        shown = f"{runtime.hardware or '-'} -> {runtime.requested_hardware}"
    return {
        "kind": "space",
        "id": repo_id,
        "status": runtime.stage,
        "hardware": shown,
        "scale": f"sleeps after {duration_text(runtime.sleep_time)}"
        if runtime.sleep_time
        else None,
        "hourly_cost": cost,
    }


def _endpoint_row(server: WebhooksServer, ident: str) -> dict[str, Any]:
    namespace, name = ident.split("/", 1)
    endpoint = server.hub.get_inference_endpoint(name, namespace=namespace)
    compute = endpoint.raw.get("compute") or {}
    scaling = compute.get("scaling") or {}
    state = endpoint.raw.get("status") or {}
    replicas = (
        f"{state.get('readyReplica', '?')} ready / {state.get('targetReplica', '?')} target "
        f"({scaling.get('minReplica', '?')}-{scaling.get('maxReplica', '?')})"
    )
    return {
        "kind": "endpoint",
        "id": ident,
        "status": endpoint.status,
        "hardware": " ".join(
            str(compute[k]) for k in ("accelerator", "instanceType", "instanceSize") if k in compute
        )
        or None,
        "scale": replicas,
        "hourly_cost": None,  # the endpoint object carries no price
    }


def _instance_rows(server: WebhooksServer) -> list[dict[str, Any]]:
    client = server.instances
    prices = {h.hardware_type_id: h for h in client.get_all_hardware_types()}
    rows = []
    for instance in client.get_all_instances():
        args = instance.instance_args
        kind = prices.get(args.hardware_type_id or "")
        cost = None
        if kind is not None and kind.price_per_hour is not None:
            running = instance.status not in ("stopped", "deleted", "failed")
            cost = kind.price_per_hour * (args.num_workers or 1) if running else 0.0
        rows.append(
            {
                "kind": "instance",
                "id": instance.instance_id,
                "status": instance.status,
                "hardware": f"{args.hardware_type_id} for {args.model_id}",
                "scale": f"{args.num_workers or 1} worker(s)",
                "hourly_cost": cost,
            }
        )
    return rows
