"""What the built-in automations in `handlers/` share: configuration from the environment.

Each automation is off unless its switch variable is set (a Space variable or secret). Then all
its variables are validated at once, at start (when `spacehooks serve` imports `handlers/`), and a
bad value stops the start with one line naming the variable and the expected form. The module
exposes `router`: empty when off, else the handlers and schedules `build(config)` made.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from .routing import Router
from .settings import read_env

__all__ = ["REPO_ID", "AutomationConfig", "router_from_env", "split_list"]

log = logging.getLogger("spacehooks.automations")
C = TypeVar("C", bound="AutomationConfig")

#: A Hub repo id, `owner/name` (a pattern for the automations' variables).
REPO_ID = r"^[A-Za-z0-9][\w.-]*/[\w.-]+$"


class AutomationConfig(BaseModel):
    """An automation's variables (field aliases), validated together."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    #: the variable that turns the automation on; unset or empty: off
    switch: ClassVar[str]
    #: variables whose values must never be shown in errors
    secrets: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_env(cls: type[C], env: Mapping[str, str] | None = None) -> C | None:
        source = os.environ if env is None else env
        if not source.get(cls.switch, "").strip():
            return None
        name = cls.__module__.rsplit(".", 1)[-1]
        return read_env(cls, source, f"{name} is misconfigured", set(cls.secrets))


def router_from_env(
    config_type: type[C], build: Callable[[C], Router], env: Mapping[str, str] | None = None
) -> Router:
    """The automation's router: `build(config)` when it is switched on, else an empty one."""
    config = config_type.from_env(env)
    if config is None:
        return Router()
    router = build(config)
    log.info(
        "automation %s is on: %d handler(s), %d schedule(s)",
        config_type.__module__.rsplit(".", 1)[-1],
        len(router.handlers),
        len(router.schedules),
    )
    return router


def split_list(value: Any) -> tuple[str, ...]:
    """A comma- or space-separated variable as a tuple (for `mode="before"` validators)."""
    if isinstance(value, str):
        return tuple(part for part in value.replace(",", " ").split() if part)
    return tuple(value)
