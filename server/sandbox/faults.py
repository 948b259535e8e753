"""Faults on demand, for reliability tests: chosen routes fail for their next N calls.

A rule matches requests whose path starts with `path` (and whose method is `method`, if set)
and, while it has calls left, answers one of:

- ``status``: that HTTP status (with `Retry-After: retry_after` when given), JSON error body;
- ``slow``: the real answer, after `delay` real seconds;
- ``drop``: no answer at all; the connection is closed mid-response.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["FaultMiddleware", "FaultRule", "Faults"]

KINDS = ("status", "slow", "drop")


@dataclass
class FaultRule:
    path: str
    kind: str = "status"
    times: int = 1
    status: int = 503
    retry_after: int | None = None
    delay: float = 1.0
    method: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown fault kind {self.kind!r}; use one of {KINDS}.")
        if self.times < 1:
            raise ValueError("A fault must apply to at least one call (times >= 1).")


class _Dropped(Exception):
    """Raised after a partial response so the server closes the connection."""


class Faults:
    """The rules in force; thread-safe, shared between the control routes and the middleware."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching this request, counting the call against it."""
        with self._lock:
            for rule in self.rules:
                if path.startswith(rule.path) and rule.method in (None, method):
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                    return rule
        return None


class FaultMiddleware:
    """ASGI middleware applying `faults` before the app sees the request."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        rule = None
        if scope["type"] == "http":
            rule = self.faults.take(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.kind == "slow":
            await asyncio.sleep(rule.delay)
            await self.app(scope, receive, send)
        elif rule.kind == "drop":
            # Promise a body, send none, and fail: the server aborts the connection.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"100")],
                }
            )
            raise _Dropped("sandbox fault: connection dropped on purpose")
        else:
            body = b'{"error": "sandbox fault: injected %d"}' % rule.status
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            if rule.retry_after is not None:
                headers.append((b"retry-after", str(rule.retry_after).encode()))
            await send({"type": "http.response.start", "status": rule.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
