"""Configuration, read from the environment once, at the entry point, and validated.

Space secrets and variables arrive as environment variables, so this is the one place that reads
them: `Settings.from_env(os.environ)`. Everything else takes a `Settings`. A bad value stops the
start with one line naming the variable, the value's problem and the expected form; secrets are
`SecretStr` so they never print.

| variable | default | meaning |
| --- | --- | --- |
| WEBHOOK_SECRET | none | shared secret the Hub sends (required on a Space) |
| SPACEHOOKS_ALLOW_UNSIGNED | false | allow a Space to run with open endpoints, deliberately |
| HF_TOKEN | none | Hub token; none means the sandbox Hub |
| HF_ENDPOINT | https://huggingface.co | Hub base URL |
| SPACE_ID, SPACE_HOST, SPACE_AUTHOR_NAME | none | set by Spaces |
| DATABASE_URL | none | PostgreSQL URL (several replicas) |
| SPACEHOOKS_DB | see `database_url()` | SQLite file path |
| SPACEHOOKS_MAX_BODY_BYTES | 1048576 | largest webhook body accepted (413 beyond) |
| SPACEHOOKS_ACK_BUDGET | 5 | seconds a handler may take and still give the response |
| SPACEHOOKS_DEDUPE_WINDOW | 600 | seconds a repeated delivery counts as a duplicate |
| SPACEHOOKS_RETENTION_DAYS | 30 | succeeded deliveries older than this are pruned |
| SPACEHOOKS_POLL_INTERVAL | 1 | seconds between looks for due retries and expired claims |
| SPACEHOOKS_CLAIM_TTL | 60 | seconds a job claim lives without a heartbeat |
| SPACEHOOKS_CONCURRENCY | 16 | jobs run at once by one process |
| SPACEHOOKS_SHUTDOWN_GRACE | 20 | seconds running jobs and final pushes get on SIGTERM |
| SPACEHOOKS_LEADER_INTERVAL | 5 | seconds between a standby's tries for the scheduler lock |
| SPACEHOOKS_LOG_LEVEL | INFO | logging level |
| GRADIO_SERVER_NAME, GRADIO_SERVER_PORT | see `serve` | bind address and port when not given |
| SPACEHOOKS_MAX_HOURLY_COST | none | refuse instance starts/scales above this hourly cost |
| CORTECS_CLIENT_ID, CORTECS_CLIENT_SECRET | none | instance provider credentials |
| CORTECS_API_BASE_URL | the provider's | instance provider API base URL |
| SPACEHOOKS_SANDBOX_SPEED | 10 | simulated seconds per second in the sandbox (no HF_TOKEN) |
| SPACEHOOKS_SANDBOX_TOKEN | generated | the sandbox demo account's token |
| SPACEHOOKS_ADMIN_TOKEN | none | bearer token for the admin API (else loopback only, off Spaces) |
| SPACEHOOKS_ADMINS | SPACE_AUTHOR_NAME | Hub users who may use the console (comma-separated) |
| OAUTH_CLIENT_ID | none | set by a Space with `hf_oauth: true`: the console signs in with the Hub |
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

__all__ = ["ConfigError", "Settings", "read_env"]

log = logging.getLogger("spacehooks")


class ConfigError(Exception):
    """The configuration cannot work; the message names the variable and the fix."""


M = TypeVar("M", bound=BaseModel)


def read_env(
    model: type[M],
    env: Mapping[str, str] | None,
    what: str,
    secrets: set[str] = frozenset(),  # type: ignore[assignment]
    **overrides: Any,
) -> M:
    """Validate the variables that `model`'s field aliases name; raise `ConfigError` with one
    line naming each bad variable (secret values hidden), the problem, and the expected form."""
    source = dict(os.environ if env is None else env)
    fields = {f.alias for f in model.model_fields.values() if f.alias}
    # An empty Space variable means "not set" (the default applies), not "".
    data: dict[str, Any] = {k: v for k, v in source.items() if k in fields and v.strip()}
    data.update(overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "missing":
                problems.append(f"{name} is required")
                continue
            shown = "(hidden)" if name in secrets else repr(err.get("input"))
            problems.append(f"{name}={shown}: {err['msg']}" if err["loc"] else err["msg"])
        raise ConfigError(f"{what}: " + "; ".join(problems)) from None


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    webhook_secret: SecretStr | None = Field(None, alias="WEBHOOK_SECRET")
    allow_unsigned: bool = Field(False, alias="SPACEHOOKS_ALLOW_UNSIGNED")
    hf_token: SecretStr | None = Field(None, alias="HF_TOKEN")
    hf_endpoint: str = Field("https://huggingface.co", alias="HF_ENDPOINT")
    space_id: str | None = Field(None, alias="SPACE_ID")
    space_host: str | None = Field(None, alias="SPACE_HOST")
    space_author_name: str | None = Field(None, alias="SPACE_AUTHOR_NAME")
    database_url_env: SecretStr | None = Field(None, alias="DATABASE_URL")
    db_path: str | None = Field(None, alias="SPACEHOOKS_DB")
    max_body_bytes: int = Field(1024 * 1024, alias="SPACEHOOKS_MAX_BODY_BYTES", gt=0)
    ack_budget: float = Field(5.0, alias="SPACEHOOKS_ACK_BUDGET", ge=0)
    dedupe_window: float = Field(600.0, alias="SPACEHOOKS_DEDUPE_WINDOW", ge=0)
    retention_days: float = Field(30.0, alias="SPACEHOOKS_RETENTION_DAYS", gt=0)
    poll_interval: float = Field(1.0, alias="SPACEHOOKS_POLL_INTERVAL", gt=0)
    claim_ttl: float = Field(60.0, alias="SPACEHOOKS_CLAIM_TTL", gt=0)
    concurrency: int = Field(16, alias="SPACEHOOKS_CONCURRENCY", ge=1)
    shutdown_grace: float = Field(20.0, alias="SPACEHOOKS_SHUTDOWN_GRACE", ge=0)
    leader_interval: float = Field(5.0, alias="SPACEHOOKS_LEADER_INTERVAL", gt=0)
    log_level: str = Field("INFO", alias="SPACEHOOKS_LOG_LEVEL")
    # Gradio's own variables, which huggingface_hub's launch() honours through Gradio.
    server_name: str | None = Field(None, alias="GRADIO_SERVER_NAME")
    server_port: int | None = Field(None, alias="GRADIO_SERVER_PORT", gt=0, lt=65536)
    admin_token: SecretStr | None = Field(None, alias="SPACEHOOKS_ADMIN_TOKEN")
    admins_env: str | None = Field(None, alias="SPACEHOOKS_ADMINS")
    oauth_client_id: str | None = Field(None, alias="OAUTH_CLIENT_ID")
    max_hourly_cost: float | None = Field(None, alias="SPACEHOOKS_MAX_HOURLY_COST", ge=0)
    cortecs_client_id: str | None = Field(None, alias="CORTECS_CLIENT_ID")
    cortecs_client_secret: SecretStr | None = Field(None, alias="CORTECS_CLIENT_SECRET")
    cortecs_api_base_url: str | None = Field(None, alias="CORTECS_API_BASE_URL")
    sandbox_speed: float = Field(10.0, alias="SPACEHOOKS_SANDBOX_SPEED", gt=0)
    sandbox_token: str | None = Field(None, alias="SPACEHOOKS_SANDBOX_TOKEN")

    @field_validator("hf_endpoint")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str:
        return (value or "https://huggingface.co").rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str | None) -> str:
        level = (value or "INFO").upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("admins_env")
    @classmethod
    def _admins(cls, value: str | None) -> str | None:
        for name in (value or "").replace(",", " ").split():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name):
                raise ValueError(f"{name!r} is not a Hub user name; list names, e.g. 'alice,bob'")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate the environment (default `os.environ`); raise `ConfigError`."""
        secrets = {
            "WEBHOOK_SECRET",
            "HF_TOKEN",
            "DATABASE_URL",
            "SPACEHOOKS_ADMIN_TOKEN",
            "CORTECS_CLIENT_SECRET",
        }
        return read_env(cls, env, "Bad configuration", secrets, **overrides)

    @property
    def admins(self) -> frozenset[str]:
        """Hub users who may use the console when it signs in with the Hub (lowercase)."""
        if self.admins_env:
            return frozenset(n.lower() for n in self.admins_env.replace(",", " ").split())
        return frozenset({self.space_author_name.lower()} if self.space_author_name else ())

    @property
    def on_space(self) -> bool:
        return self.space_id is not None

    @property
    def secret(self) -> str | None:
        return self.webhook_secret.get_secret_value() if self.webhook_secret else None

    def check_security(self) -> None:
        """Fail closed on a Space with no secret; warn locally."""
        if self.secret is not None:
            return
        if self.on_space and not self.allow_unsigned:
            raise ConfigError(
                "WEBHOOK_SECRET is not set, and this Space has a public URL: anyone could trigger "
                "your handlers. Add a WEBHOOK_SECRET secret in the Space settings (the same value "
                "as in the webhook's settings on the Hub), or set SPACEHOOKS_ALLOW_UNSIGNED=1 if "
                "open endpoints are deliberate."
            )
        log.warning(
            "WEBHOOK_SECRET is not set: the webhook endpoints accept requests from anyone. "
            "Set it before exposing this server."
        )

    def database_url(self, volume: Path = Path("/data")) -> str:
        """Where the inbox lives: DATABASE_URL, else a SQLite file (see module docs)."""
        if self.database_url_env is not None:
            return self.database_url_env.get_secret_value()
        if self.db_path is not None:
            path = Path(self.db_path)
        elif self.on_space and volume.is_dir() and os.access(volume, os.W_OK):
            path = volume / "spacehooks.db"
        else:
            path = Path("data") / "spacehooks.db"
            if self.on_space:
                log.warning(
                    "No volume is mounted at %s: deliveries survive a process crash but not a "
                    "Space restart, which wipes this disk. Set DATABASE_URL to a PostgreSQL "
                    "database (or mount a volume at %s) to keep them.",
                    volume,
                    volume,
                )
        return f"sqlite:///{path}"

    def public_url(self, local: str) -> str:
        """The base URL the Hub should call: the Space's when on one, else `local`."""
        return f"https://{self.space_host}" if self.space_host else local.rstrip("/")
