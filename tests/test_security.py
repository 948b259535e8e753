from __future__ import annotations

import pytest

from server.security import Rejection, sign_standard, verify

BODY = b'{"hello": "world"}'
NOW = 1_700_000_000


def check(
    headers=None, query=None, secret="s3cret", schemes=("hub", "standard"), body=BODY, now=NOW
):
    verify(
        secret=secret, headers=headers or {}, query=query or {}, body=body, now=now, schemes=schemes
    )


def test_hub_secret_header_accepted() -> None:
    check({"x-webhook-secret": "s3cret"})


def test_hub_secret_query_parameter_accepted() -> None:
    check(query={"secret": "s3cret"})


def test_missing_secret_is_401_with_a_hint() -> None:
    with pytest.raises(Rejection) as info:
        check()
    assert info.value.status_code == 401
    assert info.value.body()["error"] == "x-webhook-secret header not set."
    assert "WEBHOOK_SECRET" in info.value.body()["hint"]


@pytest.mark.parametrize("given", ["wrong", "", "s3cret ", "s3cr\u00e9t", "\udcff"])
def test_wrong_secret_is_403(given: str) -> None:
    with pytest.raises(Rejection) as info:
        check({"x-webhook-secret": given})
    assert info.value.status_code == 403
    assert "s3cret" not in str(info.value.body())


def test_no_secret_configured_accepts_everything() -> None:
    check(secret=None)


def standard_headers(secret: str, msg_id: str = "msg_1", ts: int = NOW, body: bytes = BODY) -> dict:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, msg_id, ts, body),
    }


def test_standard_signature_accepted_with_plain_and_whsec_keys() -> None:
    check(standard_headers("s3cret"))
    key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    check(standard_headers(key), secret=key)


def test_standard_signature_known_vector() -> None:
    # The Standard Webhooks specification's published example.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign_standard(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_key_rotation_any_of_several_signatures() -> None:
    headers = standard_headers("s3cret")
    old = sign_standard("old-key", "msg_1", NOW, BODY)
    headers["webhook-signature"] = f"{old} v1a,ignored {headers['webhook-signature']}"
    check(headers)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.update({"webhook-timestamp": str(NOW - 301)}), "stale"),
        (lambda h: h.update({"webhook-timestamp": str(NOW + 301)}), "stale"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "Unix time"),
        (lambda h: h.pop("webhook-id"), "without webhook-id"),
        (lambda h: h.update({"webhook-signature": "v2,abc"}), "no v1 signature"),
        (lambda h: h.update({"webhook-signature": "v1,AAAA"}), "does not match"),
    ],
)
def test_bad_standard_signatures_are_401_with_the_reason(mutate, reason) -> None:
    headers = standard_headers("s3cret")
    mutate(headers)
    with pytest.raises(Rejection, match=reason) as info:
        check(headers)
    assert info.value.status_code == 401


def test_altered_body_fails_signature() -> None:
    with pytest.raises(Rejection, match="does not match"):
        check(standard_headers("s3cret"), body=BODY + b" ")


def test_schemes_restrict_what_is_accepted() -> None:
    with pytest.raises(Rejection) as info:
        check({"x-webhook-secret": "s3cret"}, schemes=("standard",))
    assert info.value.status_code == 401
    with pytest.raises(Rejection):
        check(standard_headers("s3cret"), schemes=("hub",))
    check(standard_headers("s3cret"), schemes=("standard",))
