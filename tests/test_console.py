"""The console in a real browser: Playwright driving Debian's Chromium against a server process
on loopback. Screenshots of each step go to test-artifacts/console/."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import gradio as gr
import pytest
import requests

from server import ConfigError, WebhooksServer
from server.console import admission, console_access
from tests.procs import ROOT, spacehooks

ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_console_access_rules(make_settings) -> None:
    unknown_bind = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    assert console_access(unknown_bind).mode == "off"  # plain uvicorn: fail closed
    open_locally = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    open_locally.bind_host = "127.0.0.1"
    assert console_access(open_locally).mode == "local"
    open_locally.tunneled = True  # --share: the internet reaches loopback through the tunnel
    assert console_access(open_locally).mode == "off"
    everywhere = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    everywhere.bind_host = "0.0.0.0"
    assert console_access(everywhere).mode == "off"
    on_space = WebhooksServer(
        ui=False, webhook_secret="s", routers=[], settings=make_settings(SPACE_ID="me/hooks")
    )
    assert console_access(on_space).mode == "off"  # no hf_oauth, no token: closed
    with_token = WebhooksServer(
        ui=False, routers=[], settings=make_settings(SPACEHOOKS_ADMIN_TOKEN="adm")
    )
    access = console_access(with_token)
    assert access.mode == "token"
    assert access.auth("anyone", "adm") and not access.auth("anyone", "nope")


def request_signed_in_as(user: str | None, expires_in: float = 3600) -> gr.Request:
    from starlette.requests import Request

    session = {}
    if user is not None:
        info = {"preferred_username": user}
        session["oauth_info"] = {"userinfo": info, "expires_at": time.time() + expires_in}
    return gr.Request(request=Request({"type": "http", "session": session, "headers": []}))


def test_signing_in_with_the_hub_admits_only_the_admins(make_settings) -> None:
    space = {"SPACE_ID": "me/hooks", "SPACE_AUTHOR_NAME": "Me", "OAUTH_CLIENT_ID": "cid"}
    owner_only = WebhooksServer(
        ui=False, webhook_secret="s", routers=[], settings=make_settings(**space)
    )
    access = console_access(owner_only)
    assert access.mode == "hub"
    assert admission(owner_only, access, request_signed_in_as("me")) is None  # the owner
    refusal = admission(owner_only, access, request_signed_in_as("mallory"))
    assert "Signed in as mallory, who is not an admin" in refusal
    assert "SPACEHOOKS_ADMINS" in refusal
    assert admission(owner_only, access, request_signed_in_as(None)).startswith("Sign in")
    expired = request_signed_in_as("me", expires_in=-1)
    assert admission(owner_only, access, expired).startswith("Sign in")

    team = WebhooksServer(
        ui=False,
        webhook_secret="s",
        routers=[],
        settings=make_settings(**space, SPACEHOOKS_ADMINS="alice, Bob"),
    )
    assert admission(team, access, request_signed_in_as("bob")) is None
    assert admission(team, access, request_signed_in_as("me")) is not None  # the list replaces


def test_admin_names_are_checked_at_start(make_settings) -> None:
    with pytest.raises(ConfigError, match=r"SPACEHOOKS_ADMINS='alice;bob'.*not a Hub user name"):
        make_settings(SPACEHOOKS_ADMINS="alice;bob")


@pytest.mark.slow
def test_operator_sends_opens_and_replays_a_delivery_in_a_browser(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {
        "SPACEHOOKS_DB": str(tmp_path / "db"),
        "SPACEHOOKS_ADMIN_TOKEN": "adm-token",
        "WEBHOOK_SECRET": "console-secret",
        "LEDGER_PATH": str(tmp_path / "ledger"),
        "SPACEHOOKS_SANDBOX_SPEED": "1000",
        "SCHEDULE_CRON": "0 3 * * *",  # not due during the test: run by hand
        "TICKER_SPACE": "demo/trainer",  # a Space of the embedded sandbox's demo account
    }
    server = spacehooks(
        "serve",
        *("--handlers", "tests.apps.ledger", "--handlers", "tests.apps.scheduled"),
        env=env,
        log=tmp_path / "log",
    )
    try:
        server.wait_ready()
        server.wait_for_output("console ready", timeout=90)
        anonymous = requests.get(server.url + "/console/config", timeout=10)
        assert anonymous.status_code == 401 and "Not authenticated" in anonymous.text
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})

            # An anonymous visitor: the landing page, and a login form for the console.
            page.goto(server.url + "/", wait_until="networkidle")
            expect(page.locator("#webhook-urls textarea")).to_have_value(
                f"http://127.0.0.1:{server.port}/webhooks/hub", timeout=30000
            )
            expect(page.get_by_text("SANDBOX").first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "1-landing.png", full_page=True)
            page.goto(server.url + "/console/", wait_until="networkidle")
            expect(page.get_by_role("button", name="Login")).to_be_visible()
            assert page.get_by_role("tab", name="Deliveries").count() == 0
            page.screenshot(path=ARTIFACTS / "2-login.png", full_page=True)

            # Sign in with the admin token.
            page.locator("input[type=password]").fill("wrong")
            page.locator("input[type=text]").fill("operator")
            page.get_by_role("button", name="Login").click()
            expect(page.get_by_text("Incorrect Credentials")).to_be_visible(timeout=15000)
            page.locator("input[type=text]").fill("operator")
            page.locator("input[type=password]").fill("adm-token")
            started = time.monotonic()
            page.get_by_role("button", name="Login").click()
            page.get_by_role("tab", name="Send a test event").wait_for(timeout=30000)
            load = time.monotonic() - started
            page.screenshot(path=ARTIFACTS / "3-console.png", full_page=True)

            # Send a test event through the real webhook route, with the real secret.
            page.get_by_role("tab", name="Send a test event").click()
            page.locator("#send").click()
            expect(page.locator("#sent-id textarea")).not_to_have_value("", timeout=15000)
            delivery = page.locator("#sent-id textarea").input_value()
            assert page.locator("#send-result textarea").input_value().startswith("HTTP 200")
            page.screenshot(path=ARTIFACTS / "4-sent.png", full_page=True)

            # Watch it appear in Deliveries, open it, replay it, see the second attempt.
            page.get_by_role("tab", name="Deliveries").click()
            page.locator("#refresh").click()
            expect(page.locator("#deliveries")).to_contain_text(delivery, timeout=15000)
            page.screenshot(path=ARTIFACTS / "5-deliveries.png", full_page=True)
            page.locator("#delivery-id textarea").fill(delivery)
            page.locator("#open").click()
            expect(page.locator("#detail")).to_contain_text('"number": 1', timeout=15000)
            page.locator("#replay").click()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                page.locator("#open").click()
                try:
                    expect(page.locator("#detail")).to_contain_text('"number": 2', timeout=1000)
                    break
                except AssertionError:
                    continue
            expect(page.locator("#detail")).to_contain_text('"number": 2')
            page.screenshot(path=ARTIFACTS / "6-replayed.png", full_page=True)

            # Schedules: run the nightly ticker now, and see its result; pause it.
            page.get_by_role("tab", name="Schedules").click()
            expect(page.locator("#schedules")).to_contain_text("schedule:ticker", timeout=15000)
            expect(page.locator("#schedules")).to_contain_text("cron 0 3 * * * (UTC)")
            page.locator("#run-now").click()
            expect(page.locator("#schedule-result")).to_contain_text("Started schedule:ticker")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                page.locator("#schedules-refresh").click()
                try:
                    expect(page.locator("#schedules")).to_contain_text("succeeded", timeout=1000)
                    break
                except AssertionError:
                    continue
            expect(page.locator("#schedules")).to_contain_text("succeeded")
            page.locator("#pause").click()
            expect(page.locator("#schedule-result")).to_contain_text("paused", timeout=15000)
            page.screenshot(path=ARTIFACTS / "7-schedules.png", full_page=True)

            # Resources: the Space the ticker read, as the (sandbox) Hub reports it now.
            page.get_by_role("tab", name="Resources").click()
            page.locator("#resources-refresh").click()
            expect(page.locator("#resources")).to_contain_text("demo/trainer", timeout=15000)
            expect(page.locator("#resources")).to_contain_text("cpu-basic")
            page.screenshot(path=ARTIFACTS / "8-resources.png", full_page=True)
            browser.close()
    finally:
        server.stop()
    runs = [json.loads(line) for line in (tmp_path / "ledger").read_text().splitlines()]
    assert len([r for r in runs if "key" in r]) == 2  # the delivery ran, then again on replay
    assert len([r for r in runs if "due" in r]) == 1  # the schedule, run by hand
    print(f"console page load after sign-in: {load:.2f} s")
    assert "adm-token" not in server.output and "console-secret" not in server.output


@pytest.mark.slow
def test_signing_in_with_hugging_face_opens_the_console_to_an_admin(
    sandbox_hub, tmp_path: Path
) -> None:
    """Off a Space, Gradio's "Sign in with Hugging Face" signs in as the token's owner (its local
    stand-in for the Hub's OAuth): here the sandbox's demo user, through HF_ENDPOINT."""
    from playwright.sync_api import expect, sync_playwright

    env = {
        "SPACEHOOKS_DB": str(tmp_path / "db"),
        "WEBHOOK_SECRET": "console-secret",
        "HF_ENDPOINT": sandbox_hub.url,
        "HF_TOKEN": sandbox_hub.sandbox.demo.token,
        "OAUTH_CLIENT_ID": "spacehooks-test",  # what a Space with hf_oauth: true sets
        "SPACEHOOKS_ADMINS": "alice,demo",
        "LEDGER_PATH": str(tmp_path / "ledger"),
    }
    server = spacehooks("serve", "--handlers", "tests.apps.ledger", env=env, log=tmp_path / "log")
    try:
        server.wait_ready()
        server.wait_for_output("console ready", timeout=90)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 800})
            page.goto(server.url + "/console/", wait_until="networkidle")
            expect(page.locator("#access-notice")).to_contain_text(
                "Sign in with Hugging Face to use the console", timeout=15000
            )
            assert not page.get_by_role("tab", name="Deliveries").is_visible()
            page.screenshot(path=ARTIFACTS / "9-hub-sign-in.png", full_page=True)
            page.locator("#login").click()
            expect(page.locator("#access-notice")).to_contain_text(
                "Signed in as demo", timeout=15000
            )
            expect(page.get_by_role("tab", name="Deliveries")).to_be_visible()
            expect(page.locator("#summary")).to_contain_text("0 deliveries")
            page.screenshot(path=ARTIFACTS / "10-hub-signed-in.png", full_page=True)
            browser.close()
    finally:
        server.stop()
    assert sandbox_hub.sandbox.demo.token not in server.output
