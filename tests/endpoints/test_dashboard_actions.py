"""Create, edit, pause and delete from the dashboard, with and without htmx."""

from __future__ import annotations

import re

import pytest
from rq import Queue
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import AuditEvent, Endpoint, User
from monitorapp.tenancy import system_scope
from tests.conftest import add_endpoints, csrf_token, login

HTMX = {"HX-Request": "true"}
PUBLIC = "https://93.184.216.34/health"


def rows(team_id=None) -> list[Endpoint]:
    db.session.expire_all()
    with system_scope():
        return list(db.session.execute(select(Endpoint).order_by(Endpoint.created_at.desc())).scalars())


def post(client, path, data, htmx=False):
    data = {"csrf_token": csrf_token(client, "/dashboard"), **data}
    return client.post(path, data=data, headers=HTMX if htmx else {})


# -- create --------------------------------------------------------------------


def test_create_without_javascript_redirects_to_the_first_page(as_alice, redis_client):
    response = post(as_alice, "/dashboard/endpoints", {"url": PUBLIC, "name": "Shop", "interval_minutes": "2"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"
    (endpoint,) = rows()
    assert (endpoint.name, endpoint.url, endpoint.interval_minutes, endpoint.status) == ("Shop", PUBLIC, 2, "pending")
    assert Queue("checks", connection=redis_client).count == 1
    page = as_alice.get("/dashboard").get_data(as_text=True)
    assert "Added Shop" in page


def test_create_with_htmx_returns_a_fresh_form_and_the_table_with_the_new_row(as_alice, alice):
    add_endpoints(alice.team_id, 30)
    response = post(as_alice, "/dashboard/endpoints", {"url": PUBLIC, "name": "Shop", "interval_minutes": "5"},
                    htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert response.headers["HX-Push-Url"] == "/dashboard"
    form = html[: html.index("</section>")]
    assert 'id="create-form"' in form and 'value=""' in form and "field-error" not in form
    assert '<div id="endpoint-list" hx-swap-oob="true">' in html
    assert "Showing 1–25 of 31" in html
    assert re.search(r"<tbody[^>]*>\s*<tr id=\"endpoint-[^\"]+\">\s*<td>(<a [^>]*>)?Shop(</a>)?</td>", html)
    assert '<div id="flashes" aria-live="polite" hx-swap-oob="true">' in html
    assert "Added Shop" in html


def test_create_with_an_error_answers_422_with_the_form_and_the_input_kept(as_alice):
    response = post(as_alice, "/dashboard/endpoints", {"url": "http://169.254.169.254/", "name": "Metadata",
                                                       "interval_minutes": "0"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    assert html.lstrip().startswith('<section id="create-endpoint"')
    assert 'value="http://169.254.169.254/"' in html
    assert 'value="Metadata"' in html
    assert "private, local or reserved" in html
    assert "Enter a whole number of minutes from 1 to 1440." in html
    assert rows() == []


def test_create_with_an_error_without_javascript_answers_422_with_the_whole_page(as_alice):
    response = post(as_alice, "/dashboard/endpoints", {"url": "ftp://example.com/", "interval_minutes": "five"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html
    assert "Only http and https URLs can be monitored" in html
    assert 'value="five"' in html


def test_create_refuses_a_duplicate_in_another_spelling(as_alice):
    assert post(as_alice, "/dashboard/endpoints", {"url": PUBLIC, "interval_minutes": "5"}).status_code == 303
    response = post(as_alice, "/dashboard/endpoints", {"url": "HTTPS://93.184.216.34:443/health#x",
                                                       "interval_minutes": "5"}, htmx=True)
    assert response.status_code == 422
    assert "Your team already monitors this URL." in response.get_data(as_text=True)


def test_create_writes_the_audit_event(as_alice, alice):
    post(as_alice, "/dashboard/endpoints", {"url": PUBLIC, "interval_minutes": "5"})
    with system_scope():
        event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "endpoint.create")).scalar_one()
    assert (event.actor_id, event.target) == (alice.user_id, str(rows()[0].id))


def test_an_unverified_user_cannot_add_endpoints(as_alice, alice):
    with system_scope():
        db.session.get(User, alice.user_id).email_verified_at = None
        db.session.commit()
    page = as_alice.get("/dashboard").get_data(as_text=True)
    assert 'id="create-form"' not in page
    assert "Verify your email address" in page
    response = post(as_alice, "/dashboard/endpoints", {"url": PUBLIC, "interval_minutes": "5"}, htmx=True)
    assert response.status_code == 403
    assert rows() == []


def test_create_needs_the_csrf_token(as_alice):
    response = as_alice.post("/dashboard/endpoints", data={"url": PUBLIC, "interval_minutes": "5"})
    assert response.status_code == 400
    assert rows() == []


# -- delete --------------------------------------------------------------------


def test_delete_with_htmx_rerenders_the_same_page(as_alice, alice):
    ids = add_endpoints(alice.team_id, 30)
    response = post(as_alice, f"/dashboard/endpoints/{ids[10]}/delete", {"page": "1"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="endpoint-table">')
    assert "Showing 1–25 of 29" in html
    assert "svc-010</" not in html
    assert "Deleted svc-010." in html
    assert response.headers["HX-Replace-Url"] == "/dashboard"


def test_deleting_the_last_row_of_the_last_page_lands_on_the_page_before(as_alice, alice):
    ids = add_endpoints(alice.team_id, 26)
    response = post(as_alice, f"/dashboard/endpoints/{ids[0]}/delete", {"page": "2"}, htmx=True)
    html = response.get_data(as_text=True)
    assert "Showing 1–25 of 25" in html
    assert "Page 1 of 1" in html
    assert response.headers["HX-Replace-Url"] == "/dashboard"


def test_delete_without_javascript_asks_first_then_redirects_to_the_page_before(as_alice, alice):
    ids = add_endpoints(alice.team_id, 26)
    confirm = as_alice.get(f"/dashboard/endpoints/{ids[0]}/delete?page=2")
    assert confirm.status_code == 200
    assert "Delete svc-000?" in confirm.get_data(as_text=True)
    assert len(rows()) == 26
    response = post(as_alice, f"/dashboard/endpoints/{ids[0]}/delete", {"page": "2"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"
    assert len(rows()) == 25
    assert "Deleted svc-000" in as_alice.get("/dashboard").get_data(as_text=True)


def test_delete_keeps_the_search_and_filter(as_alice, alice):
    ids = add_endpoints(alice.team_id, 3, prefix="shop", status="down")
    response = post(as_alice, f"/dashboard/endpoints/{ids[0]}/delete", {"q": "shop", "status": "down"})
    assert response.headers["Location"] == "/dashboard?q=shop&status=down"


def test_delete_writes_the_audit_event_and_removes_the_row(as_alice, alice):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    post(as_alice, f"/dashboard/endpoints/{endpoint_id}/delete", {})
    assert rows() == []
    with system_scope():
        event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "endpoint.delete")).scalar_one()
    assert event.target == str(endpoint_id)


# -- pause, resume, edit ---------------------------------------------------------


def test_pause_and_resume_from_the_row(as_alice, alice, redis_client):
    (endpoint_id,) = add_endpoints(alice.team_id, 1, status="up")
    response = post(as_alice, f"/dashboard/endpoints/{endpoint_id}/pause", {"paused": "1"}, htmx=True)
    assert '<span class="badge badge-paused">paused</span>' in response.get_data(as_text=True)
    assert ">Resume</button>" in response.get_data(as_text=True)
    assert rows()[0].status == "paused"
    response = post(as_alice, f"/dashboard/endpoints/{endpoint_id}/pause", {"paused": "0"})
    assert response.status_code == 303
    assert rows()[0].status == "pending"
    assert Queue("checks", connection=redis_client).count == 1


def test_the_edit_page_changes_an_endpoint(as_alice, alice):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    page = as_alice.get(f"/dashboard/endpoints/{endpoint_id}/edit").get_data(as_text=True)
    assert 'value="https://svc-000.example.com/"' in page
    response = post(as_alice, f"/dashboard/endpoints/{endpoint_id}/edit",
                    {"name": "Shop", "url": PUBLIC, "interval_minutes": "10", "paused": "1"})
    assert response.status_code == 303
    endpoint = rows()[0]
    assert (endpoint.name, endpoint.url, endpoint.interval_minutes, endpoint.paused, endpoint.status) == (
        "Shop", PUBLIC, 10, True, "paused"
    )


def test_the_edit_page_answers_422_with_messages_and_input(as_alice, alice):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = post(as_alice, f"/dashboard/endpoints/{endpoint_id}/edit",
                    {"name": "Shop", "url": "http://10.0.0.1/", "interval_minutes": "2000"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'value="http://10.0.0.1/"' in html
    assert "private, local or reserved" in html
    assert "from 1 to 1440" in html
    assert rows()[0].url == "https://svc-000.example.com/"


# -- who may --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/dashboard/endpoints", {"url": PUBLIC, "interval_minutes": "5"}),
        ("get", "/dashboard/endpoints/{id}/edit", None),
        ("post", "/dashboard/endpoints/{id}/edit", {"url": PUBLIC, "interval_minutes": "5"}),
        ("post", "/dashboard/endpoints/{id}/pause", {"paused": "1"}),
        ("get", "/dashboard/endpoints/{id}/delete", None),
        ("post", "/dashboard/endpoints/{id}/delete", {}),
    ],
)
def test_a_viewer_is_refused_every_change(client, victor, method, path, data):
    (endpoint_id,) = add_endpoints(victor.team_id, 1)
    login(client, victor)
    path = path.format(id=endpoint_id)
    if method == "get":
        response = client.get(path)
    else:
        response = client.post(path, data={"csrf_token": csrf_token(client, "/dashboard"), **data})
    assert response.status_code == 403
    assert len(rows()) == 1 and rows()[0].status == "pending"


@pytest.mark.parametrize("path", ["/dashboard/endpoints/{id}/edit", "/dashboard/endpoints/{id}/pause",
                                  "/dashboard/endpoints/{id}/delete"])
def test_another_teams_endpoint_is_not_found(client, alice, charlie, path):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    login(client, charlie)
    response = client.post(path.format(id=endpoint_id),
                           data={"csrf_token": csrf_token(client, "/dashboard"), "paused": "1", "url": PUBLIC,
                                 "interval_minutes": "5"})
    assert response.status_code == 404
    assert client.get(f"/dashboard/endpoints/{endpoint_id}/edit").status_code == 404
    assert client.get(f"/dashboard/endpoints/{endpoint_id}/delete").status_code == 404
    assert rows()[0].status == "pending"


def test_a_member_may_change_endpoints(client, bob):
    (endpoint_id,) = add_endpoints(bob.team_id, 1)
    login(client, bob)
    assert post(client, f"/dashboard/endpoints/{endpoint_id}/pause", {"paused": "1"}).status_code == 303


def test_actions_refuse_the_wrong_method(as_alice, alice):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    assert as_alice.get("/dashboard/endpoints").status_code == 405
    assert as_alice.get(f"/dashboard/endpoints/{endpoint_id}/pause").status_code == 405


def test_renaming_does_not_look_up_the_unchanged_url_again(as_alice, alice):
    # svc-000.example.com does not resolve here; an unchanged URL is not checked again.
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = post(as_alice, f"/dashboard/endpoints/{endpoint_id}/edit",
                    {"name": "Renamed", "url": "https://svc-000.example.com/", "interval_minutes": "5"})
    assert response.status_code == 303
    assert rows()[0].name == "Renamed"
