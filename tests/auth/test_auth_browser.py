"""The accounts journey in a real browser: sign up, verify, invite, accept, viewer, log out."""

from __future__ import annotations

import pytest

from tests.auth.conftest import NEW_PASSWORD, link_in, mail_to

pytestmark = pytest.mark.browser


def test_sign_up_verify_invite_accept_and_the_viewer_cannot_write(page, live_server, outbox, _chromium):
    base = live_server.url

    # Dora signs up and is told to check her email.
    page.goto(base + "/register")
    page.fill("#register-form input[name=email]", "dora@example.com")
    page.fill("#register-form input[name=password]", NEW_PASSWORD)
    page.fill("#register-form input[name=team_name]", "Dora's team")
    page.click("#register-form button[type=submit]")
    page.wait_for_url("**/register/check-email")
    assert page.locator("h1").inner_text() == "Check your email"

    # She opens the verification link from the outbox, then logs in.
    page.goto(base + link_in(mail_to(outbox, "dora@example.com", "Verify"), "/verify/"))
    page.wait_for_url("**/login")
    assert "verified" in page.locator("#flashes").inner_text()
    page.fill("#login-form input[name=email]", "dora@example.com")
    page.fill("#login-form input[name=password]", NEW_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/dashboard")
    assert page.locator("#verify-banner").count() == 0
    assert page.locator("#create-form").count() == 1  # verified owners may add endpoints

    # She invites Vic as a viewer from the team page.
    page.goto(base + "/team")
    page.fill("#invite-form input[name=email]", "vic@example.com")
    page.select_option("#invite-form select[name=role]", "viewer")
    page.click("#invite-form button[type=submit]")
    page.wait_for_url("**/team")
    assert "Invitation sent to vic@example.com" in page.locator("#flashes").inner_text()
    assert page.locator("#team-invite table").inner_text().count("vic@example.com") == 1
    invitation = link_in(mail_to(outbox, "vic@example.com", "invited you"), "/invitations/")

    # Vic, in his own browser session, accepts by creating his account.
    vic_context = _chromium.new_context()
    try:
        vic = vic_context.new_page()
        vic_errors: list[str] = []
        vic.on("console", lambda message: message.type == "error" and vic_errors.append(message.text))
        vic.goto(base + invitation)
        assert "Join Dora's team" in vic.locator("h1").inner_text()
        vic.fill("#join-form input[name=password]", "vic's own long passphrase")
        vic.click("#join-form button[type=submit]")
        vic.wait_for_url("**/dashboard")

        # As a viewer he cannot add endpoints, invite people or make write tokens.
        assert vic.locator("#create-form").count() == 0
        vic.goto(base + "/team")
        assert vic.locator("#invite-form").count() == 0
        assert "viewer" in vic.locator("#team-members").inner_text()
        vic.goto(base + "/account")
        assert vic.locator("#token-form input[value=write]").count() == 0

        # He logs out with the POST form in the navigation.
        vic.click("nav form[action='/logout'] button")
        vic.wait_for_url("**/login")
        vic.goto(base + "/account")
        vic.wait_for_url("**/login?next=**")
        assert [error for error in vic_errors if "Content Security Policy" in error] == []
    finally:
        vic_context.close()

    # Dora sees Vic in her team.
    page.goto(base + "/team")
    assert "vic@example.com" in page.locator("#team-members").inner_text()
    page.click("nav form[action='/logout'] button")
    page.wait_for_url("**/login")
    assert page.watcher.csp_violations == []
    assert page.watcher.console_errors == []
