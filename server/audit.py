"""The audit log: every action an automation takes against the Hub or the provider, and the
state automations keep between runs.

Handlers ask for them by annotation:

    def retrain(payload: WebhookPayload, hub: HubClient, audit: Audit, state: State) -> None:
        audit.once("request_space_hardware", "space demo/trainer",
                   lambda: hub.request_space_hardware("demo/trainer", "t4-small"),
                   cost_per_hour=0.40)

`Audit.once` runs an action at most once per delivery (or per explicit key): a retry, a duplicate
or a replay of the delivery finds it recorded and skips it. Each entry says who (the handler or
schedule, with the delivery and attempt), what, on which target, when, the outcome, and the
hourly cost when the action starts something billed. Entries also go to the server's
`audit_sinks` (the `audit_to_dataset` automation adds one that writes JSON Lines).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from .context import DeliveryContext
from .db import Database, audit_log, automation_state

__all__ = ["Audit", "AuditEntry", "Sink", "State"]

log = logging.getLogger("spacehooks.audit")
T = TypeVar("T")

#: Called with each entry once it is recorded (in the handler's thread).
Sink = Callable[["AuditEntry"], None]


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    target: str
    outcome: str
    delivery_id: str | None
    attempt: int | None
    cost_per_hour: float | None
    detail: dict[str, Any] | None

    def json(self) -> dict[str, Any]:
        """One JSON Lines record; the same keys and types in every record."""
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "delivery_id": self.delivery_id or "",
            "attempt": self.attempt or 0,
            "cost_per_hour": self.cost_per_hour,
            "detail": json.dumps(self.detail or {}, sort_keys=True, default=str),
        }


class Audit:
    """The audit log as one run of one handler sees it (inject it by annotation)."""

    def __init__(
        self,
        db: Database,
        context: DeliveryContext | None,
        actor: str,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self._db = db
        self._context = context
        self.actor = actor
        self._sinks = sinks

    def once(
        self,
        action: str,
        target: str,
        do: Callable[[], T],
        *,
        key: str | None = None,
        cost_per_hour: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> T | None:
        """Run `do` unless this action on this target is already recorded as done for this
        delivery (or under `key`); record it. Returns what `do` returned, or None if skipped."""
        context = self._context
        once_key = key or f"{context.delivery_id if context else '-'}:{action}:{target}"
        once_key = once_key[:255]
        if self._db.read(lambda c: _done(c, once_key)):
            log.info("audit: %s %s already done (%s); skipped", action, target, once_key)
            return None
        try:
            result = do()
        except Exception as exc:
            self.record(
                action,
                target,
                outcome="failed",
                detail={**(detail or {}), "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            raise
        self.record(action, target, cost_per_hour=cost_per_hour, detail=detail, once_key=once_key)
        return result

    def record(
        self,
        action: str,
        target: str,
        *,
        outcome: str = "done",
        cost_per_hour: float | None = None,
        detail: dict[str, Any] | None = None,
        once_key: str | None = None,
    ) -> AuditEntry:
        context = self._context
        entry = AuditEntry(
            at=time.time(),
            actor=self.actor,
            action=action,
            target=target,
            outcome=outcome,
            delivery_id=context.delivery_id if context else None,
            attempt=context.attempt if context else None,
            cost_per_hour=cost_per_hour,
            detail=detail,
        )
        row = {
            "at": entry.at,
            "actor": entry.actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "delivery_id": entry.delivery_id,
            "attempt": entry.attempt,
            "cost_per_hour": cost_per_hour,
            "detail": json.dumps(detail, default=str) if detail else None,
            "once_key": once_key,
        }
        self._db.submit(lambda conn: conn.execute(audit_log.insert().values(**row))).result()
        log.info(
            "audit: %s %s %s by %s%s",
            action,
            target,
            outcome,
            entry.actor,
            f" ({cost_per_hour:.2f}/h)" if cost_per_hour else "",
        )
        for sink in list(self._sinks):
            try:
                sink(entry)
            except Exception:
                log.exception("an audit sink failed; the entry is in the database")
        return entry

    def entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest entries, newest first."""

        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

        return self._db.read(read)


def _done(conn: sa.Connection, once_key: str) -> bool:
    found = conn.execute(
        sa.select(audit_log.c.id).where(audit_log.c.once_key == once_key).limit(1)
    ).first()
    return found is not None


class State:
    """What automations remember between runs: JSON values under string keys, in the database
    (inject it by annotation). Keys are namespaced by convention: ``"<automation>:<what>"``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> Any:
        row = self._db.read(
            lambda c: c.execute(
                sa.select(automation_state.c.value).where(automation_state.c.key == key)
            ).scalar()
        )
        return None if row is None else json.loads(row)

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, default=str)

        def write(conn: sa.Connection) -> None:
            conn.execute(automation_state.delete().where(automation_state.c.key == key))
            conn.execute(
                automation_state.insert().values(key=key, value=text, updated_at=time.time())
            )

        self._db.submit(write).result()

    def delete(self, key: str) -> None:
        self._db.submit(
            lambda c: c.execute(automation_state.delete().where(automation_state.c.key == key))
        ).result()

    def items(self, prefix: str) -> dict[str, Any]:
        """Every key starting with `prefix`, with its value."""

        def read(conn: sa.Connection) -> dict[str, Any]:
            rows = conn.execute(
                sa.select(automation_state.c.key, automation_state.c.value).where(
                    automation_state.c.key.startswith(prefix, autoescape=True)
                )
            )
            return {k: json.loads(v) for k, v in rows}

        return self._db.read(read)
