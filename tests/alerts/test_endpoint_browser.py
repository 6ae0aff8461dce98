"""The endpoint page in headless Chromium: the chart and the strip, paging checks, acknowledging."""

from __future__ import annotations

import os
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import insert

from monitorapp.extensions import db
from monitorapp.models import CheckResult, CheckRollup, utcnow
from monitorapp.tenancy import system_scope
from tests.alerts.conftest import make_endpoint, record
from tests.conftest import login

pytestmark = pytest.mark.browser
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "endpoint.png"


def sign_in(context, live_server, actor) -> None:
    client = live_server.app.test_client()
    login(client, actor)
    cookie = client.get_cookie(live_server.app.config["SESSION_COOKIE_NAME"])
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def seed_history(endpoint) -> None:
    """A day of five-minute checks with a slow spell and failures, and 80 days of rollups."""
    rng = random.Random(6)
    now = utcnow()
    rows = []
    for number in range(288, 2, -1):
        moment = now - timedelta(minutes=5 * number)
        slow = 120 <= number <= 150
        failed = 200 <= number <= 204
        rows.append({"endpoint_id": endpoint.id, "tenant_id": endpoint.tenant_id, "checked_at": moment,
                     "ok": not failed, "status_code": 503 if failed else 200,
                     "latency_ms": rng.randint(400, 650) if slow else rng.randint(90, 160),
                     "message": "HTTP 503 Service Unavailable." if failed else None, "attempt": 1})
    rollups = []
    for days_ago in range(2, 82):
        failures = 300 if days_ago == 17 else (rng.choice([0, 0, 0, 0, 2]))
        rollups.append({"endpoint_id": endpoint.id, "tenant_id": endpoint.tenant_id,
                        "day": (now - timedelta(days=days_ago)).date(), "checks": 1440, "failures": failures,
                        "downtime_seconds": failures * 60, "avg_latency_ms": 120.0, "p95_latency_ms": 180.0})
    with system_scope():
        db.session.execute(insert(CheckResult), rows)
        db.session.execute(insert(CheckRollup), rollups)
        db.session.commit()


def test_the_endpoint_page_draws_its_history_pages_checks_and_acknowledges(page, browser_context, live_server, alice):
    endpoint = make_endpoint(alice.team_id, name="Checkout API", url="https://checkout.example.com/health")
    seed_history(endpoint)
    record(endpoint, "---", start=utcnow() - timedelta(minutes=9), step=timedelta(minutes=3))
    sign_in(browser_context, live_server, alice)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{live_server.url}/endpoints/{endpoint.id}")

    expect(page.locator("#latency-chart polyline").first).to_be_visible()
    expect(page.locator("#latency-chart")).to_contain_text("time (UTC)")
    expect(page.locator("#status-strip rect.strip-day")).to_have_count(90)
    expect(page.locator("#status-strip rect.strip-down")).not_to_have_count(0)
    if os.environ.get("MONITORAPP_SCREENSHOTS") == "1":  # refresh the README's picture on request only
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    first_row = page.locator("#recent-checks tbody tr").first.inner_text()
    page.locator("#recent-checks a[rel=next]").click()
    expect(page).to_have_url(re.compile(r"checks_page=2"))
    expect(page.locator("#recent-checks")).to_contain_text("Page 2")
    assert page.locator("#recent-checks tbody tr").first.inner_text() != first_row

    page.locator(".ack-button").first.click()
    expect(page.locator("#incident-timeline")).to_contain_text("Acknowledged by alice@example.com")
    expect(page.locator("#flashes")).to_contain_text("no more reminders")

    assert page.watcher.csp_violations == []
    assert page.watcher.console_errors == []


def test_a_channel_is_added_and_tested_on_the_channels_page(page, browser_context, live_server, alice, receiver):
    sign_in(browser_context, live_server, alice)
    page.goto(f"{live_server.url}/channels")

    page.fill("#channel-name", "Ops hook")
    page.select_option("#channel-kind", "webhook")
    page.fill("#channel-target", receiver.url("/ops/s3cret-path-token"))
    page.click("#channel-form button[type=submit]")

    row = page.locator("#channel-list tbody tr").first
    expect(row).to_contain_text("Ops hook")
    expect(row).to_contain_text("http://…/…oken")
    expect(page.locator("#channel-target")).to_have_value("")
    row.locator("button", has_text="Send test").click()
    expect(page.locator("#flashes")).to_contain_text("Sent a test through Ops hook")
    assert [body["event"] for body in receiver.bodies] == ["test"]
    assert "s3cret-path-token" not in page.content()
    assert page.watcher.csp_violations == []
    assert page.watcher.console_errors == []
