from __future__ import annotations

from pathlib import Path

import pytest

from server import ConfigError, Settings, WebhooksServer


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.max_body_bytes == 1024 * 1024 and s.ack_budget == 5.0
    assert s.hf_endpoint == "https://huggingface.co"
    assert s.database_url() == "sqlite:///data/spacehooks.db"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SPACEHOOKS_ACK_BUDGET": "soon"},
            r"SPACEHOOKS_ACK_BUDGET='soon': Input should be a valid number",
        ),
        ({"SPACEHOOKS_MAX_BODY_BYTES": "-1"}, r"SPACEHOOKS_MAX_BODY_BYTES='-1'.*greater than 0"),
        ({"SPACEHOOKS_LOG_LEVEL": "LOUD"}, r"SPACEHOOKS_LOG_LEVEL.*DEBUG, INFO"),
        ({"SPACEHOOKS_ALLOW_UNSIGNED": "maybe"}, r"SPACEHOOKS_ALLOW_UNSIGNED='maybe'"),
    ],
)
def test_bad_variable_is_one_clear_line(env, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Settings.from_env(env)
    assert "\n" not in str(info.value)


def test_secrets_never_appear_in_errors_or_reprs() -> None:
    s = Settings.from_env(
        {
            "WEBHOOK_SECRET": "topsecret-1",
            "HF_TOKEN": "hf_topsecret2",
            "DATABASE_URL": "postgresql://u:pw-topsecret3@h/db",
        }
    )
    assert "topsecret" not in repr(s) and "topsecret" not in str(s)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"WEBHOOK_SECRET": "topsecret-1", "SPACEHOOKS_ACK_BUDGET": "x"})
    assert "topsecret" not in str(info.value)


def test_blank_values_mean_unset() -> None:
    assert Settings.from_env({"WEBHOOK_SECRET": "  ", "SPACEHOOKS_ACK_BUDGET": ""}).secret is None


def test_space_without_secret_refuses_to_start_naming_the_variable(tmp_path: Path) -> None:
    settings = Settings.from_env({"SPACE_ID": "me/hooks", "SPACEHOOKS_DB": str(tmp_path / "x.db")})
    with pytest.raises(ConfigError, match=r"WEBHOOK_SECRET.*SPACEHOOKS_ALLOW_UNSIGNED=1"):
        WebhooksServer(ui=False, settings=settings, routers=[])
    allowed = settings.model_copy(update={"allow_unsigned": True})
    WebhooksServer(ui=False, settings=allowed, routers=[])
    WebhooksServer(ui=False, webhook_secret="given", settings=settings, routers=[])


def test_local_without_secret_warns_through_logging(caplog) -> None:
    Settings.from_env({}).check_security()
    assert "WEBHOOK_SECRET is not set" in caplog.text


def test_database_location_rules(tmp_path: Path, caplog) -> None:
    assert (
        Settings.from_env({"DATABASE_URL": "postgresql://h/db"}).database_url()
        == "postgresql://h/db"
    )
    assert Settings.from_env({"SPACEHOOKS_DB": "/x/y.db"}).database_url() == "sqlite:////x/y.db"
    volume = tmp_path / "data"
    on_space = Settings.from_env({"SPACE_ID": "me/hooks"})
    assert on_space.database_url(volume=volume) == "sqlite:///data/spacehooks.db"
    assert "Space restart" in caplog.text and "DATABASE_URL" in caplog.text
    volume.mkdir()
    assert on_space.database_url(volume=volume) == f"sqlite:///{volume}/spacehooks.db"


def test_public_url_prefers_the_space_host() -> None:
    assert (
        Settings.from_env({"SPACE_HOST": "me-hooks.hf.space"}).public_url("http://x")
        == "https://me-hooks.hf.space"
    )
    assert Settings.from_env({}).public_url("http://127.0.0.1:7860/") == "http://127.0.0.1:7860"
