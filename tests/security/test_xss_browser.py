"""Stored and reflected XSS, tried in headless Chromium on the real pages, htmx included.

Every place a person's text comes back — endpoint names, URLs and errors,
check messages, incident errors, team and channel names, member and invitation
addresses, token names, audit targets, search terms and form input echoed with
its errors — is filled with classic HTML/JS payloads: directly in the database
where a form would refuse them (a URL with a raw `<script>` in its query, a
`javascript:` URL, an address that is not one), and through the forms
themselves where they are accepted.

On every page, and after every htmx swap (pagination, the 15-second refresh,
search, form errors, out-of-band flashes) and history restore, the page must
show each payload as literal text, no dialog may open, Chromium may report no
CSP violation, and no element or attribute a payload would have created may
exist in the DOM. The CSP alone would stop most scripts from running, so the
DOM is what proves the escaping.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from monitorapp.extensions import db
from monitorapp.models import (
    AuditEvent,
    CheckResult,
    Endpoint,
    Incident,
    Invitation,
    Membership,
    NotificationChannel,
    Role,
    Tenant,
    User,
    utcnow,
)
from monitorapp.tenancy import system_scope, tenant_scope
from tests.conftest import login, make_token
from tests.figures import record

pytestmark = pytest.mark.browser

# Element payloads carry `data-xss`, so a payload that became markup is found by one query.
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2) data-xss>',
    "'><img src=x onerror=alert(3) data-xss>",
    "<svg onload=alert(4) data-xss>",
    "<svg><script data-xss>alert(5)</script></svg>",
    "<img src=x onerror=alert(6) data-xss//",
    "javascript:alert(7)",
    "{{7*7}} {{ config }} ${7*7} #{7*7}",
    "{% print(7*7) %}{% raw %}",
    '<div hx-get=/x hx-trigger=load data-xss>hx</div>',
    '<a hx-post="/logout" hx-trigger="load" data-xss>out</a>',
    "<div hx-on:htmx:load=alert(8) data-xss>on</div>",
    '<a href="javascript:alert(9)" data-xss>click</a>',
    '" onmouseover="alert(10)" data-xss="',
    "' onfocus='alert(11)' autofocus data-xss='",
    "<iframe srcdoc='<script>alert(12)</script>' data-xss></iframe>",
    "<details open ontoggle=alert(13) data-xss>",
    "</textarea><script>alert(14)</script>",
    "</title><script>alert(15)</script>",
    "<style>*{display:none}</style><b data-xss>",
    "<base href=//evil.example/ data-xss>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(16)' data-xss>",
    "<input autofocus onfocus=alert(17) data-xss>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(18) data-xss>",
    "&lt;script&gt;alert(19)&lt;/script&gt;",
    "<!--<img src=x onerror=alert(20) data-xss>-->",
]
TEAM_NAME = '"><svg onload=alert(21) data-xss>{{7*7}}'
OTHER_TEAMS = PAYLOADS[:6]
JS_URL = "javascript:alert(document.domain)"

# What a payload would leave behind if the page had parsed it as markup. The app itself
# has no inline script, no inline handler, no frame, no <base>, no <meta http-equiv> in <body>.
INJECTED = """() => {
  const found = [];
  const selectors = [
    "[data-xss]", "script:not([src])", "body script[src]:not([src^='/static/'])", "iframe", "object", "embed",
    "base", "body meta", "body style", "math", "[autofocus]",
    "a[href^='javascript:' i]", "[src^='javascript:' i]", "form[action^='javascript:' i]",
    "[hx-get='/x']", "[hx-post='/logout']", "[hx-trigger='load']",
  ];
  for (const selector of selectors) {
    for (const element of document.querySelectorAll(selector)) found.push(selector + " → " + element.outerHTML.slice(0, 120));
  }
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith("on") || name.startsWith("hx-on") || name.startsWith("data-hx-on")) {
        found.push("attribute " + name + " on " + element.outerHTML.slice(0, 120));
      }
    }
  }
  return found;
}"""


def sign_in(context, live_server, actor) -> None:
    """Put a signed session cookie for `actor` in the browser (no login form needed)."""
    client = live_server.app.test_client()
    login(client, actor)
    cookie = client.get_cookie(live_server.app.config["SESSION_COOKIE_NAME"])
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def assert_safe(page, visible: list[str] = (), present: list[str] = (), allow_statuses: tuple[int, ...] = ()) -> None:
    """No dialog, no CSP violation, nothing injected; `visible` texts shown literally, `present` ones in the DOM."""
    __tracebackhide__ = True
    page.wait_for_load_state("load")
    assert page.watcher.dialogs == [], f"{page.url}: a dialog opened: {page.watcher.dialogs}"
    assert page.watcher.csp_violations == [], f"{page.url}: {page.watcher.csp_violations}"
    assert page.evaluate(INJECTED) == [], page.url
    # A deliberate 4xx answer (a form with errors) is logged by Chromium as a failed resource.
    allowed = tuple(f"status of {status}" for status in allow_statuses)
    errors = [error for error in page.watcher.console_errors if not (allowed and any(a in error for a in allowed))]
    assert errors == [], f"{page.url}: {errors}"
    shown = page.evaluate("() => document.body.innerText")
    text = page.evaluate("() => document.documentElement.textContent")
    for value in visible:
        assert value in shown, f"{page.url}: {value!r} is not shown literally"
    for value in present:
        assert value in text, f"{page.url}: {value!r} is not in the page's text"
    record_page(page)


def record_page(page) -> None:
    from tests.figures import add

    add("XSS pages and swaps checked in Chromium")


# -- the seeded world -------------------------------------------------------------------------


def seed(alice) -> dict[str, uuid.UUID]:
    """Every kind of user text in alice's team, one payload per row; returns ids to visit."""
    ids: dict[str, uuid.UUID] = {}
    start = utcnow() - timedelta(hours=2)
    with system_scope():
        db.session.get(Tenant, alice.team_id).name = TEAM_NAME
        for number, name in enumerate(OTHER_TEAMS):
            team = Tenant(name=name[:100])
            db.session.add(team)
            db.session.flush()
            db.session.add(Membership(user_id=alice.user_id, tenant_id=team.id, role=Role.MEMBER.value,
                                      created_at=start + timedelta(seconds=number)))
        # No usable password: this member never signs in here (and scrypt would only cost time).
        member = User(email="<svg onload=alert(22) data-xss>@example.com", email_verified_at=utcnow(), password_hash="!")
        db.session.add(member)
        db.session.flush()
        db.session.add(Membership(user_id=member.id, tenant_id=alice.team_id, role=Role.MEMBER.value))
        db.session.commit()
    with tenant_scope(alice.team_id):
        endpoints = []
        for number, payload in enumerate(PAYLOADS):
            endpoint = Endpoint(
                name=payload,
                url=f"https://93.184.216.34/{number}?q={payload}",  # raw: the form would percent-encode it
                status="down",
                last_error=payload,
                last_status_code=500,
                last_checked_at=start,
                created_at=start + timedelta(minutes=number),
            )
            endpoints.append(endpoint)
        javascript = Endpoint(name="js-url", url=JS_URL, status="up", created_at=start - timedelta(minutes=1))
        db.session.add_all([*endpoints, javascript])
        db.session.flush()
        ids["newest"] = endpoints[-1].id
        ids["javascript"] = javascript.id
        for number, (endpoint, payload) in enumerate(zip(endpoints, PAYLOADS, strict=True)):
            db.session.add(Incident(endpoint_id=endpoint.id, started_at=start + timedelta(minutes=number),
                                    first_error=payload, failed_checks=3))
            db.session.add(CheckResult(endpoint_id=ids["newest"], checked_at=start + timedelta(minutes=number),
                                       ok=False, status_code=500, latency_ms=12, error_kind="http_status",
                                       message=payload))
            db.session.add(AuditEvent(action="endpoint.created", target=payload, detail={"name": payload}))
            db.session.add(Invitation(email=f"{payload}@example.com"[:254], role=Role.MEMBER.value,
                                      invited_by_id=alice.user_id, expires_at=utcnow() + timedelta(days=3)))
        for number, payload in enumerate(PAYLOADS):
            channel = NotificationChannel(
                id=uuid.uuid4(), name=payload[:100], kind="webhook", target_hint=payload[:120],
                last_error=payload, last_error_at=start, failing=True,
                created_at=start + timedelta(seconds=number),
            )
            db.session.add(channel)
            ids.setdefault("channel", channel.id)
        script_hint = NotificationChannel(id=uuid.uuid4(), name="js-hint", kind="webhook", target_hint=JS_URL)
        db.session.add(script_hint)
        db.session.commit()
    for payload in PAYLOADS[:5]:
        make_token(alice, name=payload[:100])
    db.session.expunge_all()
    return ids


@pytest.fixture
def world(alice):
    return seed(alice)


@pytest.fixture
def signed_in(page, browser_context, live_server, alice, world):
    sign_in(browser_context, live_server, alice)
    return page


def test_the_corpus_is_classic_and_the_checker_finds_injected_markup(page, live_server):
    assert len(PAYLOADS) >= 15
    record("XSS payloads", len(PAYLOADS))
    # The checker itself: the same payloads as markup must all be found.
    page.goto(live_server.url + "/health/")
    page.evaluate(
        """payloads => { const div = document.createElement("div");
                         div.innerHTML = payloads.join(""); document.body.append(div); }""",
        [payload for payload in PAYLOADS if "data-xss" in payload],
    )
    found = page.evaluate(INJECTED)
    assert sum("[data-xss]" in line for line in found) >= 12
    assert any(line.startswith("attribute onerror") for line in found)


# -- whole pages ------------------------------------------------------------------------------


def test_the_dashboard_shows_names_urls_and_errors_as_text(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/dashboard")
    newest_first = list(reversed(PAYLOADS))
    assert_safe(page, visible=[TEAM_NAME, *newest_first[:25]], present=OTHER_TEAMS)
    # The URL column and the error tooltips carry them too, as text and attribute values.
    urls = page.locator("#endpoint-rows td.endpoint-url").all_inner_texts()
    assert urls[0] == f"https://93.184.216.34/{len(PAYLOADS) - 1}?q={PAYLOADS[-1]}"
    titles = page.locator("#endpoint-rows .badge-down").evaluate_all("badges => badges.map(b => b.title)")
    assert titles == newest_first[:25]
    expect(page).to_have_title(re.compile(r"^Endpoints · monitorapp$"))


def test_dashboard_pagination_and_history_restore_swap_in_only_text(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/dashboard")
    page.evaluate("window.marker = 'same document'")
    page.get_by_role("link", name="Next ›").click()
    page.wait_for_url(re.compile(r"/dashboard\?page=2$"))
    expect(page.locator("#listing-summary")).to_have_text(f"Showing 26–{len(PAYLOADS) + 1} of {len(PAYLOADS) + 1}")
    assert page.evaluate("window.marker") == "same document"  # swapped by htmx
    assert_safe(page, visible=[PAYLOADS[0], "js-url", JS_URL])
    page.go_back()
    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#listing-summary")).to_have_text(f"Showing 1–25 of {len(PAYLOADS) + 1}")
    assert_safe(page, visible=[PAYLOADS[-1], PAYLOADS[1]])
    page.go_forward()
    page.wait_for_url(re.compile(r"/dashboard\?page=2$"))
    assert_safe(page, visible=[PAYLOADS[0]])


def test_the_fifteen_second_refresh_swaps_in_new_rows_as_text(page, browser_context, live_server, alice, world):
    sign_in(browser_context, live_server, alice)
    page.clock.install()
    page.goto(live_server.url + "/dashboard")
    assert_safe(page)
    fresh_payload = "<img src=x onerror=alert(23) data-xss> fresh"
    with tenant_scope(alice.team_id):
        db.session.add(Endpoint(name=fresh_payload, url="https://93.184.216.34/fresh?q=<script>alert(24)</script>",
                                last_error=PAYLOADS[1], status="down"))
        db.session.commit()
    page.evaluate("document.getElementById('endpoint-rows').dataset.before = 'yes'")
    page.clock.fast_forward("00:16")
    page.wait_for_function("() => !document.getElementById('endpoint-rows').dataset.before", timeout=30_000)
    assert_safe(page, visible=[fresh_payload, "https://93.184.216.34/fresh?q=<script>alert(24)</script>"])


def test_the_endpoint_page_and_its_check_pages_show_payloads_as_text(signed_in, live_server, world):
    page = signed_in
    page.goto(f"{live_server.url}/endpoints/{world['newest']}")
    newest_first = list(reversed(PAYLOADS))
    assert_safe(page, visible=[PAYLOADS[-1], f"https://93.184.216.34/{len(PAYLOADS) - 1}?q={PAYLOADS[-1]}",
                               *newest_first[:20]])
    messages = page.locator("#recent-checks tbody td:last-child").all_inner_texts()
    assert messages == newest_first[:20]
    page.evaluate("window.marker = 'same document'")
    page.locator("#recent-checks").get_by_role("link", name="Older ›").click()
    page.wait_for_url(re.compile(r"checks_page=2$"))
    expect(page.locator("#recent-checks")).to_contain_text("Page 2")
    assert page.evaluate("window.marker") == "same document"
    assert page.locator("#recent-checks tbody td:last-child").all_inner_texts() == newest_first[20:]
    assert_safe(page, visible=newest_first[20:])


def test_a_javascript_url_is_never_a_link(signed_in, live_server, world):
    page = signed_in
    for path in (f"/endpoints/{world['javascript']}", "/dashboard?page=2", "/channels",
                 f"/dashboard/endpoints/{world['javascript']}/delete"):
        page.goto(live_server.url + path)
        assert_safe(page, visible=[JS_URL])
    page.goto(f"{live_server.url}/dashboard/endpoints/{world['javascript']}/edit")
    assert_safe(page)
    assert page.locator("input[name=url]").input_value() == JS_URL


def test_edit_and_delete_pages_echo_names_and_urls_as_text(signed_in, live_server, world):
    page = signed_in
    endpoint_id = world["newest"]
    page.goto(f"{live_server.url}/dashboard/endpoints/{endpoint_id}/edit")
    assert_safe(page)
    assert page.locator("input[name=name]").input_value() == PAYLOADS[-1]
    page.goto(f"{live_server.url}/dashboard/endpoints/{endpoint_id}/delete")
    assert_safe(page, visible=[f"Delete {PAYLOADS[-1]}?", f"https://93.184.216.34/{len(PAYLOADS) - 1}?q={PAYLOADS[-1]}"])
    expect(page).to_have_title(f"Delete {PAYLOADS[-1]} · monitorapp")


def test_incidents_and_their_pages_show_errors_as_text(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/incidents")
    newest_first = list(reversed(PAYLOADS))
    assert_safe(page, visible=[f"First error: {payload}" for payload in newest_first[:20]])
    page.evaluate("window.marker = 'same document'")
    page.locator("#incident-list .pagination").get_by_role("link", name="Older ›").click()
    page.wait_for_url(re.compile(r"/incidents\?page=2$"))
    assert page.evaluate("window.marker") == "same document"
    assert_safe(page, visible=[f"First error: {payload}" for payload in newest_first[20:]])
    page.locator(".incident-filter").get_by_role("link", name="Open").click()
    page.wait_for_url(re.compile(r"/incidents\?state=open$"))
    assert_safe(page, visible=newest_first[:20])


def test_team_settings_audit_log_and_account_show_names_and_addresses_as_text(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/team")
    assert_safe(page, visible=[f"Team {TEAM_NAME}", "<svg onload=alert(22) data-xss>@example.com",
                               *[f"{payload}@example.com" for payload in PAYLOADS]])
    expect(page).to_have_title(f"Team {TEAM_NAME} · monitorapp")
    page.goto(live_server.url + "/team/audit")
    assert_safe(page, visible=PAYLOADS[-10:])
    page.goto(live_server.url + "/account")
    assert_safe(page, visible=[*PAYLOADS[:5], *OTHER_TEAMS])


def test_channels_show_names_hints_and_errors_as_text(signed_in, live_server, world):
    page = signed_in
    page.goto(live_server.url + "/channels")
    assert_safe(page, visible=[*[payload[:100] for payload in PAYLOADS], "<svg onload=alert(22) data-xss>@example.com"])
    errors = page.locator(".channel-error").all_inner_texts()
    assert sorted(errors) == sorted(PAYLOADS)
    # "Send test" answers the list over htmx, with a flash naming the channel out of band.
    row = page.locator(f"#channel-{world['channel']}")
    row.get_by_role("button", name="Send test").click()
    expect(page.locator("#flashes .notice-error")).to_contain_text(f"The test through {PAYLOADS[0]} failed")
    assert_safe(page, visible=[f"The test through {PAYLOADS[0]} failed"])
    page.goto(f"{live_server.url}/channels/{world['channel']}/edit")
    assert_safe(page, visible=[PAYLOADS[0]])
    assert page.locator("#channel-name").input_value() == PAYLOADS[0]


# -- text typed into forms, echoed back over htmx ------------------------------------------------


def submit_and_wait_for_swap(page, swapped: str, button: str) -> None:
    """Click `button` and wait until htmx has replaced `swapped` with the answer."""
    page.locator(swapped).evaluate("element => { element.dataset.stale = 'yes'; }")
    page.click(button)
    page.wait_for_function(
        "selector => { const element = document.querySelector(selector); return element && !element.dataset.stale; }",
        arg=swapped,
        timeout=30_000,
    )


FORM_PAYLOADS = [PAYLOADS[index] for index in (0, 1, 2, 9, 11, 13, 14, 7)]


def test_endpoints_added_through_the_form_come_back_as_text(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/dashboard")
    for number, payload in enumerate(FORM_PAYLOADS):
        # Spaces would be refused; everything else of the payload stays in the typed URL.
        page.fill("#create-url", f"https://93.184.216.34/form-{number}?q={payload.replace(' ', '%20')}")
        page.fill("#create-name", payload)
        submit_and_wait_for_swap(page, "#create-endpoint", "#create-form button[type=submit]")
        notice = page.locator("#flashes .notice-success")
        expect(notice).to_have_text(f"Added {payload}. Its first check is on its way.")
        assert page.locator("#endpoint-rows tr td:first-child").first.inner_text() == payload
        assert_safe(page, visible=[payload])
    # The URL is stored normalised (percent-encoded), and shown as stored.
    first_added = page.locator("#endpoint-rows td.endpoint-url").all_inner_texts()[len(FORM_PAYLOADS) - 1]
    assert first_added == "https://93.184.216.34/form-0?q=%3Cscript%3Ealert(1)%3C/script%3E"


def test_form_errors_echo_the_input_as_text(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/dashboard")
    for payload in FORM_PAYLOADS:
        page.fill("#create-url", f"ftp://93.184.216.34/?q={payload}")  # a URL to the browser, not to us
        page.fill("#create-name", payload)
        submit_and_wait_for_swap(page, "#create-endpoint", "#create-form button[type=submit]")
        expect(page.locator("#create-url-error")).to_be_visible()
        assert page.locator("#create-name").input_value() == payload
        assert page.locator("#create-url").input_value() == f"ftp://93.184.216.34/?q={payload}"
        assert_safe(page, allow_statuses=(422,))
    page.goto(live_server.url + "/channels")
    for payload in FORM_PAYLOADS[:4]:
        page.fill("#channel-name", payload)
        page.select_option("#channel-kind", "webhook")
        page.fill("#channel-target", f"ftp://{payload}")
        submit_and_wait_for_swap(page, "#channel-form", "#channel-form button[type=submit]")
        expect(page.locator("#channel-target-error")).to_be_visible()
        assert page.locator("#channel-name").input_value() == payload
        assert_safe(page, allow_statuses=(422,))


def test_searching_for_a_payload_swaps_in_only_text(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/dashboard")
    for payload in FORM_PAYLOADS:
        with page.expect_response(lambda response: "/dashboard?" in response.url):
            page.fill("#endpoint-search input[name=q]", payload)
        expect(page.locator("#listing-summary")).to_have_text(re.compile(r"^Showing 1–\d+ of \d+$"))
        assert_safe(page, visible=[payload])
        assert page.locator("#endpoint-search input[name=q]").input_value() == payload
    # A search that finds nothing, reflected from the address bar on a full page load.
    for payload in FORM_PAYLOADS:
        page.goto(live_server.url + "/dashboard?" + _query(q=payload + " nothing"))
        expect(page.locator("#endpoint-table")).to_contain_text("No endpoints match this search.")
        assert page.locator("#endpoint-search input[name=q]").input_value() == payload + " nothing"
        assert_safe(page)


def test_a_renamed_team_shows_its_new_name_as_text(signed_in, live_server):
    page = signed_in
    name = "<script>alert(25)</script>{{7*7}}"
    page.goto(live_server.url + "/team")
    page.fill("#team-rename input[name=name]", name)
    page.click("#team-rename button[type=submit]")
    expect(page.locator("h1")).to_have_text(f"Team {name}")
    assert_safe(page, visible=[f"Team {name}", "The team is renamed."])


def test_reflected_parameters_on_public_pages_are_text(page, live_server, alice):
    for payload in FORM_PAYLOADS:
        page.goto(live_server.url + "/login?" + _query(next="/dashboard?q=" + payload))
        assert_safe(page)
        page.goto(live_server.url + "/register?" + _query(email=payload, team_name=payload))
        assert_safe(page)
    page.goto(live_server.url + "/login")
    page.fill("input[name=email]", PAYLOADS[1])
    page.fill("input[name=password]", PAYLOADS[0])
    page.click("form#login-form button[type=submit]")
    expect(page.locator("main .notice-error")).to_contain_text("do not match")
    assert page.locator("input[name=email]").input_value() == PAYLOADS[1]
    assert_safe(page, allow_statuses=(422,))


def _query(**values: str) -> str:
    from urllib.parse import urlencode

    return urlencode(values)
