"""The console in a real browser: Playwright driving Debian's Chromium against a server process
on loopback. Screenshots of each step go to test-artifacts/console/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from server import WebhooksServer
from server.console import console_auth
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
    assert console_auth(unknown_bind) == (False, None)  # plain uvicorn: fail closed
    open_locally = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    open_locally.bind_host = "127.0.0.1"
    assert console_auth(open_locally) == (True, None)
    open_locally.tunneled = True  # --share: the internet reaches loopback through the tunnel
    assert console_auth(open_locally) == (False, None)
    everywhere = WebhooksServer(ui=False, settings=make_settings(), routers=[])
    everywhere.bind_host = "0.0.0.0"
    assert console_auth(everywhere) == (False, None)
    on_space = WebhooksServer(
        ui=False, webhook_secret="s", routers=[], settings=make_settings(SPACE_ID="me/hooks")
    )
    assert console_auth(on_space) == (False, None)  # no OAuth yet: the console stays off
    with_token = WebhooksServer(
        ui=False, routers=[], settings=make_settings(SPACEHOOKS_ADMIN_TOKEN="adm")
    )
    enabled, check = console_auth(with_token)
    assert enabled and check("anyone", "adm") and not check("anyone", "nope")


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
    }
    server = spacehooks("serve", "--handlers", "tests.apps.ledger", env=env, log=tmp_path / "log")
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
            browser.close()
    finally:
        server.stop()
    runs = (tmp_path / "ledger").read_text().splitlines()
    assert len(runs) == 2  # the delivery ran, then ran again on replay
    print(f"console page load after sign-in: {load:.2f} s")
    assert "adm-token" not in server.output and "console-secret" not in server.output
