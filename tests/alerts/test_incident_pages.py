"""The incidents page, acknowledging, the dashboard banner and the endpoint page."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import Incident, utcnow
from monitorapp.tenancy import system_scope
from tests.alerts.conftest import make_endpoint, record
from tests.conftest import csrf_token, login


def test_incidents_are_listed_newest_first_and_filter_by_state(client, alice):
    old = make_endpoint(alice.team_id, name="old-outage")
    new = make_endpoint(alice.team_id, name="new-outage")
    record(old, "--+", start=utcnow() - timedelta(hours=5))
    record(new, "--", start=utcnow() - timedelta(hours=1))
    login(client, alice)

    page = client.get("/incidents").get_data(as_text=True)
    assert page.index("new-outage") < page.index("old-outage")

    open_only = client.get("/incidents?state=open", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "new-outage" in open_only and "old-outage" not in open_only and "<html" not in open_only
    resolved = client.get("/incidents?state=resolved").get_data(as_text=True)
    assert "old-outage" in resolved and "new-outage" not in resolved


def test_incidents_paginate(client, alice):
    for number in range(25):
        endpoint = make_endpoint(alice.team_id, name=f"svc-{number:02d}")
        record(endpoint, "--+", start=utcnow() - timedelta(hours=50 - number))
    login(client, alice)

    first = client.get("/incidents").get_data(as_text=True)
    second = client.get("/incidents?page=2", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert "svc-24" in first and "svc-05" in first and "svc-04" not in first
    assert "svc-04" in second and "svc-00" in second and "svc-24" not in second
    assert 'rel="next"' in first and 'rel="next"' not in second


def test_a_member_acknowledges_an_open_incident(client, alice, bob):
    endpoint = make_endpoint(alice.team_id, name="shop")
    record(endpoint, "--")
    with system_scope():
        incident_id = db.session.scalars(select(Incident.id)).one()
    login(client, bob)

    response = client.post(f"/incidents/{incident_id}/acknowledge",
                           headers={"X-CSRFToken": csrf_token(client, "/incidents"), "HX-Request": "true"})

    assert response.status_code == 200
    assert "Acknowledged by bob@example.com" in response.get_data(as_text=True)
    with system_scope():
        incident = db.session.scalars(select(Incident)).one()
        assert incident.acknowledged_by_id == bob.user_id and incident.acknowledged_at is not None


def test_a_viewer_cannot_acknowledge(client, alice, victor):
    endpoint = make_endpoint(alice.team_id, name="shop")
    record(endpoint, "--")
    with system_scope():
        incident_id = db.session.scalars(select(Incident.id)).one()
    login(client, victor)

    assert "Acknowledge" not in client.get("/incidents").get_data(as_text=True)
    response = client.post(f"/incidents/{incident_id}/acknowledge",
                           headers={"X-CSRFToken": csrf_token(client, "/incidents")})
    assert response.status_code == 403


def test_the_dashboard_shows_the_banner_and_links_names_to_the_endpoint_page(client, alice):
    down = make_endpoint(alice.team_id, name="down-one")
    up = make_endpoint(alice.team_id, name="up-one")
    make_endpoint(alice.team_id, name="paused-one", paused=True)
    record(down, "--")
    record(up, "+")
    login(client, alice)

    page = client.get("/dashboard").get_data(as_text=True)

    assert 'id="status-banner"' in page
    assert "1 up" in page and "1 down" in page and "1 paused" in page and "1 open incident" in page
    assert f'href="/endpoints/{down.id}"' in page


def test_the_endpoint_page_shows_status_uptime_chart_strip_checks_and_incidents(client, alice):
    endpoint = make_endpoint(alice.team_id, name="shop")
    record(endpoint, "+" * 50 + "--" + "+" * 8, start=utcnow() - timedelta(hours=1))
    login(client, alice)

    page = client.get(f"/endpoints/{endpoint.id}").get_data(as_text=True)

    assert 'id="latency-chart"' in page and "<polyline" in page and "time (UTC)" in page
    assert 'id="status-strip"' in page and page.count('class="strip-day') == 90
    assert "96.67%" in page  # 58 of 60 checks
    assert "resolved" in page and "First error: HTTP 503 Service Unavailable." in page
    assert f'href="/dashboard/endpoints/{endpoint.id}/edit"' in page


def test_recent_checks_paginate_over_htmx(client, alice):
    endpoint = make_endpoint(alice.team_id, name="shop")
    record(endpoint, "+" * 45, start=utcnow() - timedelta(hours=1))
    login(client, alice)

    third = client.get(f"/endpoints/{endpoint.id}/checks?page=3", headers={"HX-Request": "true"})

    html = third.get_data(as_text=True)
    assert third.status_code == 200 and "<html" not in html
    assert html.count('<span class="badge badge-up">ok</span>') == 5
    assert 'rel="next"' not in html and 'rel="prev"' in html
    # Without JavaScript the link leads to the whole page at that place.
    no_js = client.get(f"/endpoints/{endpoint.id}/checks?page=2")
    assert no_js.status_code == 303 and no_js.headers["Location"].endswith("checks_page=2")


def test_a_member_changes_the_alerting_thresholds(client, alice, bob):
    endpoint = make_endpoint(alice.team_id, name="shop")
    login(client, bob)
    headers = {"X-CSRFToken": csrf_token(client, f"/endpoints/{endpoint.id}")}

    bad = client.post(f"/endpoints/{endpoint.id}", data={"failure_threshold": "11", "recovery_threshold": "1"},
                      headers=headers | {"HX-Request": "true"})
    assert bad.status_code == 422 and "from 1 to 10" in bad.get_data(as_text=True)

    good = client.post(f"/endpoints/{endpoint.id}", data={"failure_threshold": "3", "recovery_threshold": "2"},
                       headers=headers)
    assert good.status_code == 303
    record(endpoint, "--")
    with system_scope():
        assert db.session.scalars(select(Incident)).all() == []


def test_charlie_gets_404_for_alices_endpoint_page_incident_and_channel(client, alice, charlie, receiver):
    from tests.alerts.conftest import add_channel

    endpoint = make_endpoint(alice.team_id, name="alice-shop")
    record(endpoint, "--")
    channel_id = add_channel(alice.team_id, name="alice-hook", kind="webhook", target=receiver.url())
    with system_scope():
        incident_id = db.session.scalars(select(Incident.id)).one()
    login(client, charlie)
    headers = {"X-CSRFToken": csrf_token(client, "/channels")}

    assert client.get(f"/endpoints/{endpoint.id}").status_code == 404
    assert client.get(f"/endpoints/{endpoint.id}/checks").status_code == 404
    assert client.post(f"/incidents/{incident_id}/acknowledge", headers=headers).status_code == 404
    assert client.get(f"/channels/{channel_id}/edit").status_code == 404
    assert client.post(f"/channels/{channel_id}/test", headers=headers).status_code == 404
    assert client.post(f"/channels/{channel_id}/delete", headers=headers).status_code == 404
    for path in ("/incidents", "/channels", "/dashboard"):
        body = client.get(path).get_data(as_text=True)
        assert "alice-shop" not in body and "alice-hook" not in body
    assert receiver.paths == []
