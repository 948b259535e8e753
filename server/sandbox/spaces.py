"""Simulated Space runtimes (hub-api.md 2): stages, hardware, sleep, secrets, storage, cost.

A change of hardware (or a restart, or a secret or variable change, which restart a Space on
the Hub) starts a run: BUILDING for `build_s`, APP_STARTING for `start_s`, then RUNNING on the
requested hardware, all in simulated seconds. Paid hardware accrues cost while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .hub import Access, hub_error
from .state import HubState, Repo

__all__ = ["HARDWARE_PRICES", "SpaceSim", "Spaces", "make_spaces_router"]

# USD per hour, as the Hub's hardware list reports them (free tiers cost nothing).
HARDWARE_PRICES = {
    "cpu-basic": 0.0,
    "cpu-upgrade": 0.03,
    "zero-a10g": 0.0,
    "t4-small": 0.40,
    "t4-medium": 0.60,
    "l4x1": 0.80,
    "l4x4": 3.80,
    "l40sx1": 1.80,
    "l40sx4": 8.30,
    "l40sx8": 23.50,
    "a10g-small": 1.00,
    "a10g-large": 1.50,
    "a10g-largex2": 3.00,
    "a10g-largex4": 5.00,
    "a100-large": 2.50,
    "a100x4": 10.00,
    "a100x8": 20.00,
}
STORAGE_TIERS = ("small", "medium", "large")


@dataclass
class SpaceSim:
    """One Space's runtime; the stage is derived from the clock when read."""

    requested: str = "cpu-basic"
    current: str | None = None
    run_started: float = 0.0
    paused: bool = False
    sleep_time: int | None = 172800
    storage: str | None = None
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost_usd: float = 0.0
    billed_until: float = 0.0


class Spaces:
    def __init__(self, state: HubState, build_s: float = 20.0, start_s: float = 10.0) -> None:
        self.state = state
        self.build_s, self.start_s = build_s, start_s
        self.sims: dict[str, SpaceSim] = {}
        state.spaces_hooks.append(self._created)
        state.space_runtime = self.runtime

    def _created(self, repo: Repo, body: dict[str, Any]) -> None:
        if repo.type != "space":
            return
        sim = SpaceSim(run_started=self.state.clock.now(), billed_until=self.state.clock.now())
        sim.requested = body.get("hardware") or "cpu-basic"
        sim.sleep_time = body.get(
            "sleepTimeSeconds", 172800 if sim.requested == "cpu-basic" else None
        )
        sim.storage = body.get("storageTier")
        for kind, target in (("secrets", sim.secrets), ("variables", sim.variables)):
            for item in body.get(kind) or []:
                target[item["key"]] = {
                    "value": item.get("value", ""),
                    "description": item.get("description"),
                }
        self.sims[repo.repo_id] = sim

    def sim(self, repo: Repo) -> SpaceSim:
        return self.sims.setdefault(repo.repo_id, SpaceSim())

    def stage(self, sim: SpaceSim) -> str:
        if sim.paused:
            return "PAUSED"
        elapsed = self.state.clock.now() - sim.run_started
        if elapsed < self.build_s:
            return "BUILDING"
        if elapsed < self.build_s + self.start_s:
            return "APP_STARTING"
        return "RUNNING"

    def _bill(self, sim: SpaceSim) -> None:
        """Accrue the cost of the hardware that ran since the last bill."""
        now = self.state.clock.now()
        if not sim.paused and sim.current is not None:
            sim.cost_usd += HARDWARE_PRICES.get(sim.current, 0.0) * (now - sim.billed_until) / 3600
        sim.billed_until = now

    def restart(self, sim: SpaceSim) -> None:
        self._bill(sim)
        sim.paused = False
        sim.run_started = self.state.clock.now()

    def runtime(self, repo: Repo) -> dict[str, Any]:
        sim = self.sim(repo)
        self._bill(sim)
        stage = self.stage(sim)
        if stage == "RUNNING":
            sim.current = sim.requested
        return {
            "stage": stage,
            "hardware": {
                "current": sim.current if stage != "PAUSED" else None,
                "requested": sim.requested,
            },
            "storage": sim.storage,
            "gcTimeout": sim.sleep_time,
            "replicas": {"requested": 1, "current": 1 if stage == "RUNNING" else 0},
            "devMode": False,
            "domains": [
                {"domain": f"{repo.namespace}-{repo.name}.hf.space".lower(), "stage": "READY"}
            ],
        }

    def total_cost(self) -> float:
        for sim in self.sims.values():
            self._bill(sim)
        return sum(sim.cost_usd for sim in self.sims.values())


def make_spaces_router(state: HubState, spaces: Spaces) -> APIRouter:
    router = APIRouter()
    access = Access(state)

    async def space(request: Request, ns: str, name: str, write: bool = True) -> Any:
        found = access.repo(request, "spaces", f"{ns}/{name}", write=write)
        if isinstance(found, JSONResponse):
            return found
        return found[0]

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        return dict(await request.json()) if raw else {}

    def changed(repo: Repo) -> None:
        state.announce(
            repo, {"event": {"action": "update", "scope": "repo.config"}, "updatedConfig": {}}
        )

    @router.get("/api/spaces/{ns}/{name}/runtime")
    async def runtime(ns: str, name: str, request: Request) -> Any:
        repo = await space(request, ns, name, write=False)
        return repo if isinstance(repo, JSONResponse) else spaces.runtime(repo)

    @router.post("/api/spaces/{ns}/{name}/hardware")
    async def hardware(ns: str, name: str, request: Request) -> Any:
        repo = await space(request, ns, name)
        if isinstance(repo, JSONResponse):
            return repo
        body = await body_of(request)
        flavor = body.get("flavor")
        if flavor not in HARDWARE_PRICES:
            return hub_error(
                400,
                f"Invalid hardware flavor {flavor!r}: expected one of "
                f"{', '.join(HARDWARE_PRICES)}.",
            )
        sim = spaces.sim(repo)
        spaces.restart(sim)
        sim.requested = flavor
        if "sleepTimeSeconds" in body:
            sim.sleep_time = body["sleepTimeSeconds"]
        elif flavor != "cpu-basic":
            sim.sleep_time = None  # upgraded hardware never sleeps by default
        changed(repo)
        return spaces.runtime(repo)

    @router.post("/api/spaces/{ns}/{name}/sleeptime")
    async def sleeptime(ns: str, name: str, request: Request) -> Any:
        repo = await space(request, ns, name)
        if isinstance(repo, JSONResponse):
            return repo
        spaces.sim(repo).sleep_time = int((await body_of(request)).get("seconds", -1))
        return spaces.runtime(repo)

    @router.post("/api/spaces/{ns}/{name}/pause")
    async def pause(ns: str, name: str, request: Request) -> Any:
        repo = await space(request, ns, name)
        if isinstance(repo, JSONResponse):
            return repo
        sim = spaces.sim(repo)
        spaces._bill(sim)
        sim.paused = True
        return spaces.runtime(repo)

    @router.post("/api/spaces/{ns}/{name}/restart")
    async def restart(ns: str, name: str, request: Request) -> Any:
        repo = await space(request, ns, name)
        if isinstance(repo, JSONResponse):
            return repo
        spaces.restart(spaces.sim(repo))
        return spaces.runtime(repo)

    def settings_routes(kind: str) -> None:
        @router.get(f"/api/spaces/{{ns}}/{{name}}/{kind}")
        async def listing(ns: str, name: str, request: Request) -> Any:
            repo = await space(request, ns, name)
            if isinstance(repo, JSONResponse):
                return repo
            items = getattr(spaces.sim(repo), kind)
            if kind == "secrets":  # values are never returned
                return {k: {"description": v.get("description")} for k, v in items.items()}
            return items

        @router.post(f"/api/spaces/{{ns}}/{{name}}/{kind}")
        async def upsert(ns: str, name: str, request: Request) -> Any:
            repo = await space(request, ns, name)
            if isinstance(repo, JSONResponse):
                return repo
            body = await body_of(request)
            if not body.get("key"):
                return hub_error(400, f"A {kind[:-1]} needs a key.")
            sim = spaces.sim(repo)
            getattr(sim, kind)[body["key"]] = {
                "value": body.get("value", ""),
                "description": body.get("description"),
                "updatedAt": state.clock.iso(),
            }
            spaces.restart(sim)  # the Hub restarts a Space when its secrets or variables change
            changed(repo)
            return {} if kind == "secrets" else sim.variables

        @router.delete(f"/api/spaces/{{ns}}/{{name}}/{kind}")
        async def remove(ns: str, name: str, request: Request) -> Any:
            repo = await space(request, ns, name)
            if isinstance(repo, JSONResponse):
                return repo
            sim = spaces.sim(repo)
            if getattr(sim, kind).pop((await body_of(request)).get("key"), None) is not None:
                spaces.restart(sim)
                changed(repo)
            return {} if kind == "secrets" else sim.variables

    settings_routes("secrets")
    settings_routes("variables")

    @router.post("/api/spaces/{ns}/{name}/storage")
    async def storage(ns: str, name: str, request: Request) -> Any:
        repo = await space(request, ns, name)
        if isinstance(repo, JSONResponse):
            return repo
        tier = (await body_of(request)).get("tier")
        if tier not in STORAGE_TIERS:
            return hub_error(400, f"Invalid storage tier {tier!r}: small, medium or large.")
        sim = spaces.sim(repo)
        if sim.storage and STORAGE_TIERS.index(tier) < STORAGE_TIERS.index(sim.storage):
            return hub_error(
                400,
                f"Cannot downgrade storage from {sim.storage} to {tier}: "
                "delete the current storage first.",
            )
        sim.storage = tier
        return spaces.runtime(repo)

    @router.delete("/api/spaces/{ns}/{name}/storage")
    async def delete_storage(ns: str, name: str, request: Request) -> Any:
        repo = await space(request, ns, name)
        if isinstance(repo, JSONResponse):
            return repo
        sim = spaces.sim(repo)
        if sim.storage is None:
            return hub_error(400, "This Space has no persistent storage.")
        sim.storage = None
        return spaces.runtime(repo)

    @router.post("/api/spaces/{ns}/{name}/duplicate")
    async def duplicate(ns: str, name: str, request: Request) -> Any:
        found = access.repo(request, "spaces", f"{ns}/{name}")
        if isinstance(found, JSONResponse):
            return found
        source, account = found
        if account is None:
            return hub_error(401, "You must be logged in to duplicate a Space.")
        body = await body_of(request)
        target = body.get("repository") or f"{account.name}/{name}"
        if not state.may_write(account, target.split("/")[0]):
            return hub_error(403, f"You cannot create {target}.")
        if state.repo("space", target) is not None:
            return JSONResponse({"error": "You already created this space repo"}, status_code=409)
        with state.lock:
            private = body.get("visibility") == "private" or bool(body.get("private"))
            copy = state.create_repo("space", target, private, account.name, source.sdk)
            files = dict(source.commits[source.branches["main"]].files)
            state.commit(copy, "main", files, f"Duplicate from {source.repo_id}", "", account.name)
            for hook in state.spaces_hooks:
                hook(copy, body)
        state.announce(copy, {"event": {"action": "create", "scope": "repo"}})
        return {"url": f"{str(request.base_url).rstrip('/')}/spaces/{target}"}

    @router.get("/api/spaces/hardware")
    async def hardware_list() -> Any:
        return [
            {
                "name": name,
                "prettyName": name,
                "unitCostUSD": price,
                "unitLabel": "hour",
                "unitCostMicroUSD": int(price * 1_000_000 / 60),
            }
            for name, price in HARDWARE_PRICES.items()
        ]

    return router
