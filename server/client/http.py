"""The HTTP layer every embedded client shares: one session, retries, errors, progress.

Errors form one tree, each carrying the method, path, status, the server's own message and the
request id, never a token:

    HubError
     +-- HubConnectionError        no answer (refused, reset, timed out) after retries
     +-- HubHTTPError              the server answered with an error status
          +-- BadRequest           400, 422
          +-- Unauthorized         401 (a bad or missing token)
          +-- Forbidden            403
          +-- NotFound             404 (and 401 on a repo URL: private or missing)
          |    +-- RepoNotFound, RevisionNotFound, EntryNotFound
          +-- Conflict             409
          +-- PreconditionFailed   412 (e.g. the branch moved since `parent_commit`)
          +-- RateLimited          429 (`retry_after` in seconds when the server said)
          +-- ServerError          5xx

Retries: connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff
(or the server's `Retry-After` / `RateLimit` reset) for idempotent requests only. A POST is
idempotent only when the caller says so: a lost answer to a commit or a create must not be
replayed blindly.
"""

from __future__ import annotations

import logging
import platform
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

__all__ = [
    "BadRequest",
    "Conflict",
    "EntryNotFound",
    "Forbidden",
    "HttpClient",
    "HubConnectionError",
    "HubError",
    "HubHTTPError",
    "NotFound",
    "PreconditionFailed",
    "Progress",
    "RateLimited",
    "RepoNotFound",
    "RetryConfig",
    "RevisionNotFound",
    "ServerError",
    "Unauthorized",
    "user_agent",
]

log = logging.getLogger("spacehooks.client")

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class HubError(Exception):
    """Root of every error the embedded clients raise."""


class HubConnectionError(HubError):
    """The server could not be reached (after retries)."""


class HubHTTPError(HubError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int,
        server_message: str | None,
        request_id: str | None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status_code = status_code
        self.server_message = server_message
        self.request_id = request_id
        self.response = response


class BadRequest(HubHTTPError):
    pass


class Unauthorized(HubHTTPError):
    pass


class Forbidden(HubHTTPError):
    pass


class NotFound(HubHTTPError):
    pass


class RepoNotFound(NotFound):
    pass


class RevisionNotFound(NotFound):
    pass


class EntryNotFound(NotFound):
    pass


class Conflict(HubHTTPError):
    pass


class PreconditionFailed(HubHTTPError):
    pass


class RateLimited(HubHTTPError):
    @property
    def retry_after(self) -> float | None:
        return _retry_after(self.response) if self.response is not None else None


class ServerError(HubHTTPError):
    pass


_BY_STATUS: dict[int, type[HubHTTPError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: BadRequest,
    429: RateLimited,
}
_BY_CODE: dict[str, type[HubHTTPError]] = {
    "RepoNotFound": RepoNotFound,
    "RevisionNotFound": RevisionNotFound,
    "EntryNotFound": EntryNotFound,
}


def _server_message(response: requests.Response) -> str | None:
    header = response.headers.get("X-Error-Message")
    if header:
        return header
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or None
    if isinstance(body, dict):
        error = body.get("error_description") or body.get("error") or body.get("message")
        if isinstance(error, list):
            return "; ".join(str(e) for e in error)
        if error:
            return str(error)
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
            )
    return None


def error_for(response: requests.Response, method: str, path: str) -> HubHTTPError:
    """The exception for an error response (not raised)."""
    status = response.status_code
    server_message = _server_message(response)
    request_id = (
        response.headers.get("X-Request-Id")
        or response.headers.get("X-Amzn-Trace-Id")
        or response.headers.get("X-Amz-Cf-Id")
    )
    cls = _BY_CODE.get(response.headers.get("X-Error-Code", ""))
    if cls is None:
        cls = ServerError if status >= 500 else _BY_STATUS.get(status, HubHTTPError)
        repo_url = re.match(r"^/api/(models|datasets|spaces)/", path) is not None
        bad_token = (server_message or "").startswith("Invalid credentials")
        if status == 401 and repo_url and not bad_token:
            cls = RepoNotFound  # the Hub answers 401 for private and missing repos alike
    message = f"{method} {path} answered {status}"
    if server_message:
        message += f": {server_message}"
    if cls is RepoNotFound and status == 401:
        message += " (the repo does not exist, or this token cannot see it)"
    if request_id:
        message += f" (request id {request_id})"
    return cls(
        message,
        method=method,
        path=path,
        status_code=status,
        server_message=server_message,
        request_id=request_id,
        response=response,
    )


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return float(value)
    ratelimit = response.headers.get("RateLimit", "")
    match = re.search(r"\bt=(\d+)", ratelimit)
    return float(match.group(1)) if match else None


def user_agent() -> str:
    from .. import __version__

    return (
        f"spacehooks/{__version__}; python/{platform.python_version()}; "
        f"requests/{requests.__version__}"
    )


@dataclass(frozen=True)
class RetryConfig:
    """How transient failures are retried: `max_retries` more tries, waits doubling from
    `base_delay` up to `max_delay`, or what the server asks for (capped at `max_wait`)."""

    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 8.0
    max_wait: float = 60.0


class HttpClient:
    """One pooled `requests.Session` against one base URL, with auth, retries and errors."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        session: requests.Session | None = None,
        retry: RetryConfig | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        if session is None:
            session = requests.Session()
            # A loopback server (the sandbox, a test server) is never reached through a proxy.
            host = re.sub(r"^https?://", "", self.base_url).split("/")[0].rsplit(":", 1)[0]
            session.trust_env = host not in ("127.0.0.1", "localhost", "[::1]")
        self.session = session
        self.retry = retry or RetryConfig()
        self.timeout = timeout
        #: called with the status code of every answer (the server counts them for /metrics)
        #: called after every answer with (method, path without query, status code)
        self.observer: Callable[[str, str, int], None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, token={'***' if self._token else None})"

    def set_token(self, token: str | None) -> None:
        self._token = token

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; return the 2xx/3xx response or raise a `HubError`.

        `idempotent` defaults by method (POST is not); only idempotent requests are retried.
        """
        method = method.upper()
        retryable = method in _IDEMPOTENT if idempotent is None else idempotent
        all_headers = {"user-agent": user_agent(), "x-amzn-trace-id": str(uuid.uuid4())}
        if auth and self._token:
            all_headers["authorization"] = f"Bearer {self._token}"
        all_headers.update(headers or {})
        kwargs.setdefault("timeout", self.timeout)
        shown = path if not path.startswith("http") else re.sub(r"^https?://[^/]+", "", path)
        shown = shown.split("?")[0]
        attempt = 0
        body = kwargs.get("data")
        while True:
            attempt += 1
            if attempt > 1 and hasattr(body, "seek"):
                body.seek(0)  # a streamed upload starts again from its first byte
            try:
                response = self.session.request(
                    method, self.url(path), headers=all_headers, **kwargs
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                # ChunkedEncodingError: the connection broke in the middle of the answer.
                if retryable and attempt <= self.retry.max_retries:
                    self._wait(attempt, None, f"{method} {shown}: {type(exc).__name__}")
                    continue
                raise HubConnectionError(
                    f"{method} {shown}: no answer from {self.base_url} "
                    f"({type(exc).__name__}) after {attempt} attempt(s)"
                ) from exc
            if self.observer is not None:
                self.observer(method, shown, response.status_code)
            if response.status_code < 400:
                return response
            if (
                retryable
                and response.status_code in _RETRY_STATUSES
                and attempt <= self.retry.max_retries
            ):
                self._wait(attempt, response, f"{method} {shown}: {response.status_code}")
                continue
            raise error_for(response, method, shown)

    def _wait(self, attempt: int, response: requests.Response | None, what: str) -> None:
        asked = _retry_after(response)
        if asked is not None:
            delay = min(asked, self.retry.max_wait)
        else:
            delay = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        log.warning("%s; retry %d/%d in %.1f s", what, attempt, self.retry.max_retries, delay)
        time.sleep(delay)


class Progress:
    """Progress of a long wait: a live line on a terminal, log lines (on change) otherwise."""

    def __init__(self, what: str, *, stream: Any = None) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last: str | None = None

    def update(self, state: str) -> None:
        elapsed = time.monotonic() - self.started
        if self.live:
            self.stream.write(f"\r{self.what}: {state} ({elapsed:.0f} s)\x1b[K")
            self.stream.flush()
        elif state != self._last:
            log.info("%s: %s (%.0f s)", self.what, state, elapsed)
        self._last = state

    def close(self, final: str) -> None:
        self.update(final)
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
