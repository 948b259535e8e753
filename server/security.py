"""Proving who sent a webhook: pure functions of (headers, query, body), no I/O.

Two schemes, chosen per endpoint:

- ``hub``: the Hub's own. The shared secret comes verbatim in the ``X-Webhook-Secret`` header,
  or in the ``?secret=`` query parameter of the registered URL. There is no HMAC.
- ``standard``: Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``), an HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``, base64 encoded,
  prefixed ``v1,``; several space-separated signatures allow key rotation; timestamps older or
  newer than the tolerance are refused (replay protection).

Answers follow huggingface_hub where it has one: a missing secret is 401, a wrong one 403. A bad
or stale signature is 401 with the reason. Every compare is constant-time and on bytes, so a
non-ASCII header cannot raise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_SCHEMES",
    "SCHEMES",
    "SIGNATURE_TOLERANCE_SECONDS",
    "Rejection",
    "sign_standard",
    "verify",
]

SCHEMES = frozenset({"hub", "standard"})
DEFAULT_SCHEMES = SCHEMES
SIGNATURE_TOLERANCE_SECONDS = 5 * 60

_SECRET_HEADER = "x-webhook-secret"
_STANDARD_PREFIX = "whsec_"


@dataclass(frozen=True)
class Rejection(Exception):
    """The request is not from someone who knows the secret. Carries the HTTP answer."""

    status_code: int
    error: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.status_code}: {self.error}"

    def body(self) -> dict[str, str]:
        """The JSON body to answer with (never contains the secret)."""
        return {"error": self.error, "hint": self.hint} if self.hint else {"error": self.error}


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def _standard_key(secret: str) -> bytes:
    """The HMAC key: a ``whsec_``-prefixed secret is base64, anything else is used as UTF-8."""
    if secret.startswith(_STANDARD_PREFIX):
        try:
            return base64.b64decode(secret[len(_STANDARD_PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return secret.encode("utf-8")


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a message (one ``v1,`` signature)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _verify_standard(
    secrets: Iterable[str], headers: Mapping[str, str], body: bytes, now: float, tolerance: int
) -> None:
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    if not msg_id or not stamp:
        raise Rejection(401, "webhook-signature sent without webhook-id and webhook-timestamp.")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise Rejection(401, "webhook-timestamp is not a Unix time in seconds.") from None
    if abs(now - timestamp) > tolerance:
        raise Rejection(
            401,
            f"webhook-timestamp is {int(now - timestamp)} s away from this server's clock "
            f"(tolerance {tolerance} s): stale or replayed message.",
        )
    offered = [
        part.split(",", 1)[1]
        for part in headers.get("webhook-signature", "").split()
        if part.startswith("v1,")
    ]
    if not offered:
        raise Rejection(401, "webhook-signature holds no v1 signature.")
    for secret in secrets:
        expected = sign_standard(secret, msg_id, timestamp, body).split(",", 1)[1]
        if any(_same(candidate, expected) for candidate in offered):
            return
    raise Rejection(401, "webhook-signature does not match the body: wrong key or altered message.")


def verify(
    *,
    secret: str | None,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    now: float,
    schemes: Iterable[str] = DEFAULT_SCHEMES,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> None:
    """Accept the request or raise `Rejection`. `headers` must be case-insensitive (lower keys).

    With no secret configured every request is accepted: the app decides at start whether that
    is allowed (see `settings`), not this function.
    """
    if secret is None:
        return
    schemes = frozenset(schemes)
    if "hub" in schemes:
        given = headers.get(_SECRET_HEADER)
        if given is None:
            given = query.get("secret")
        if given is not None:
            if _same(given, secret):
                return
            raise Rejection(403, "Invalid webhook secret.")
    if "standard" in schemes and "webhook-signature" in headers:
        _verify_standard([secret], headers, body, now, tolerance)
        return
    if "hub" in schemes:
        raise Rejection(
            401,
            "x-webhook-secret header not set.",
            "Set the same secret in the webhook's settings on the Hub as in WEBHOOK_SECRET here.",
        )
    raise Rejection(401, "webhook-signature header not set.")
