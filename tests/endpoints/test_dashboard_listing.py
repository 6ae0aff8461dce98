"""GET /dashboard: page or fragment, pagination, search, filter, refresh."""

from __future__ import annotations

import logging
import re

from tests.conftest import add_endpoints, login

HTMX = {"HX-Request": "true"}


def names(html: str) -> list[str]:
    return re.findall(r"<td>(?:<a [^>]*>)?(svc-\d{3}|shop-\d{3}|blog-\d{3})(?:</a>)?</td>", html)


def test_it_renders_a_full_page_to_a_plain_request(as_alice, alice):
    add_endpoints(alice.team_id, 3)
    response = as_alice.get("/dashboard")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in html
    assert "HX-Request" in response.headers["Vary"]
    assert names(html) == ["svc-002", "svc-001", "svc-000"]
    assert 'id="create-form"' in html


def test_it_renders_only_the_table_to_htmx(as_alice, alice):
    add_endpoints(alice.team_id, 3)
    response = as_alice.get("/dashboard", headers={**HTMX, "HX-Target": "endpoint-table"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="endpoint-table">')
    assert "HX-Request" in response.headers["Vary"]
    assert 'id="create-form"' not in html
    assert names(html) == ["svc-002", "svc-001", "svc-000"]


def test_a_history_restore_gets_the_full_page(as_alice, alice):
    response = as_alice.get("/dashboard?page=1", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.get_data(as_text=True)


def test_the_refresh_gets_only_the_rows_of_the_same_page(as_alice, alice):
    add_endpoints(alice.team_id, 30)
    response = as_alice.get("/dashboard?page=2", headers={**HTMX, "HX-Target": "endpoint-rows"})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<tbody id="endpoint-rows" hx-get="/dashboard?page=2" hx-trigger="every 15s"')
    assert names(html) == [f"svc-{n:03d}" for n in range(4, -1, -1)]


def test_it_shows_25_a_page_newest_first_with_a_summary(as_alice, alice):
    add_endpoints(alice.team_id, 60)
    html = as_alice.get("/dashboard?page=2").get_data(as_text=True)
    assert "Showing 26–50 of 60" in html
    assert names(html)[0] == "svc-034"
    assert len(names(html)) == 25
    assert 'href="/dashboard" hx-get="/dashboard" rel="first"' in html
    assert 'href="/dashboard?page=3" hx-get="/dashboard?page=3" rel="next"' in html
    assert 'rel="last"' in html
    assert "Page 2 of 3" in html


def test_a_page_past_the_end_shows_the_last_page(as_alice, alice):
    add_endpoints(alice.team_id, 30)
    html = as_alice.get("/dashboard?page=99").get_data(as_text=True)
    assert "Showing 26–30 of 30" in html


def test_a_bad_page_number_shows_the_first_page(as_alice, alice):
    add_endpoints(alice.team_id, 30)
    for page in ("abc", "0", "-3", ""):
        assert "Showing 1–25 of 30" in as_alice.get(f"/dashboard?page={page}").get_data(as_text=True)


def test_search_and_filter_narrow_the_table_and_stay_in_the_links(as_alice, alice):
    add_endpoints(alice.team_id, 30, prefix="shop", status="down")
    add_endpoints(alice.team_id, 5, prefix="blog", status="up")
    html = as_alice.get("/dashboard?q=SHOP&status=down").get_data(as_text=True)
    assert "Showing 1–25 of 30" in html
    assert set(name[:4] for name in names(html)) == {"shop"}
    assert 'href="/dashboard?page=2&amp;q=SHOP&amp;status=down"' in html
    assert 'value="SHOP"' in html
    assert '<option value="down" selected>' in html
    assert "Showing 1–5 of 5" in as_alice.get("/dashboard?status=up").get_data(as_text=True)
    assert "No endpoints match" in as_alice.get("/dashboard?q=nothing").get_data(as_text=True)


def test_an_unknown_status_filter_is_ignored(as_alice, alice):
    add_endpoints(alice.team_id, 2)
    assert "Showing 1–2 of 2" in as_alice.get("/dashboard?status=sideways").get_data(as_text=True)


def test_a_team_without_endpoints_sees_what_to_do(as_alice):
    html = as_alice.get("/dashboard").get_data(as_text=True)
    assert "No endpoints yet" in html
    assert "Add the first URL" in html


def test_it_shows_the_last_check(as_alice, alice):
    from datetime import timedelta

    from monitorapp.models import utcnow

    checked = (utcnow() - timedelta(minutes=3)).replace(microsecond=0)
    add_endpoints(alice.team_id, 1, status="up", last_status_code=204, last_latency_ms=87, last_checked_at=checked)
    html = as_alice.get("/dashboard").get_data(as_text=True)
    assert '<span class="badge badge-up">up</span>' in html
    assert "<td>204</td>" in html
    assert "87 ms" in html
    assert f'title="{checked.strftime("%Y-%m-%d %H:%M:%S")} UTC">3 min ago</time>' in html


def test_it_shows_only_the_teams_endpoints(client, alice, charlie):
    add_endpoints(alice.team_id, 2, prefix="shop")
    add_endpoints(charlie.team_id, 2, prefix="blog")
    login(client, charlie)
    html = client.get("/dashboard").get_data(as_text=True)
    assert names(html) == ["blog-001", "blog-000"]


def test_it_logs_page_rows_and_duration(as_alice, alice, caplog):
    add_endpoints(alice.team_id, 30)
    with caplog.at_level(logging.INFO, logger="monitors.performance"):
        as_alice.get("/dashboard?page=2")
    (record,) = [r for r in caplog.records if r.getMessage() == "dashboard rendered"]
    assert record.event["page"] == 2
    assert record.event["rows"] == 5
    assert record.event["duration_ms"] >= 0


def test_a_failed_render_is_logged(as_alice, monkeypatch, caplog):
    from monitorapp.dashboard import views

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(views.endpoints, "list_endpoints", broken)
    response = as_alice.get("/dashboard?page=3")
    assert response.status_code == 500
    assert "database went away" not in response.get_data(as_text=True)
    failed = [r for r in caplog.records if r.getMessage() == "dashboard render failed"]
    assert failed and failed[0].event["page"] == 3


def test_an_expired_session_on_htmx_redirects_to_login_with_the_page(client):
    response = client.get(
        "/dashboard?page=2",
        headers={**HTMX, "HX-Target": "endpoint-rows", "HX-Current-URL": "http://localhost/dashboard?page=2&q=shop"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/login?next=/dashboard?page%3D2%26q%3Dshop"


def test_an_expired_session_on_a_plain_request_redirects_to_login(client):
    response = client.get("/dashboard?page=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/dashboard?page%3D2"


def test_a_viewer_sees_the_table_without_controls(client, victor):
    add_endpoints(victor.team_id, 2)
    login(client, victor)
    html = client.get("/dashboard").get_data(as_text=True)
    assert len(names(html)) == 2
    assert 'id="create-form"' not in html
    assert "/delete" not in html
    assert "/edit" not in html
    assert "/pause" not in html
    assert ">Actions<" not in html
