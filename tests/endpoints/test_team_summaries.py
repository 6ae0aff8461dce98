"""The team summaries cached in Redis (monitorapp/summaries.py): counts, page anchors, open incidents.

They are there for speed (bench/web.py); these tests hold them to the rule that
a page never shows a stale count, a wrong row or another team's figures.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from monitorapp import endpoints, summaries
from monitorapp.extensions import db
from monitorapp.models import Endpoint
from monitorapp.tenancy import tenant_scope
from tests.alerts.conftest import make_endpoint, record
from tests.conftest import add_endpoints, csrf_token, login, make_token

HTMX = {"HX-Request": "true"}
PUBLIC = "https://93.184.216.34/health"


def banner_counts(client) -> dict[str, int]:
    page = client.get("/dashboard").get_data(as_text=True)
    return {status: int(count) for count, status in re.findall(r'class="badge badge-\w+">(\d+) (\w+)</a>', page)}


def summary(client, path: str = "/dashboard") -> str:
    return re.search(r'id="listing-summary">([^<]+)<', client.get(path).get_data(as_text=True)).group(1)


def test_the_counts_follow_every_change_at_once(client, alice):
    ids = add_endpoints(alice.team_id, 3)
    login(client, alice)
    assert summary(client) == "Showing 1–3 of 3"
    assert banner_counts(client)["pending"] == 3

    token = csrf_token(client, "/dashboard")
    client.post("/dashboard/endpoints", data={"csrf_token": token, "url": PUBLIC, "interval_minutes": "5"})
    assert summary(client) == "Showing 1–4 of 4"
    client.post(f"/dashboard/endpoints/{ids[0]}/pause", data={"csrf_token": token, "paused": "1"})
    assert banner_counts(client) == {"up": 0, "down": 0, "pending": 3, "paused": 1}
    html = client.post(f"/dashboard/endpoints/{ids[1]}/delete", data={"csrf_token": token}, headers=HTMX)
    assert "Showing 1–3 of 3" in html.get_data(as_text=True)  # the same request counts again
    assert banner_counts(client) == {"up": 0, "down": 0, "pending": 2, "paused": 1}


def test_a_check_that_changes_a_status_moves_the_banner_at_once(client, alice):
    endpoint = make_endpoint(alice.team_id, name="shop")
    login(client, alice)
    assert banner_counts(client)["pending"] == 1

    record(endpoint, "+")  # the worker's recorder: statuses go out in one batched UPDATE
    assert banner_counts(client)["up"] == 1
    record(endpoint, "--")
    page = client.get("/dashboard").get_data(as_text=True)
    assert ">1 down</a>" in page and "1 open incident" in page and "<strong>shop</strong>" in page


def test_a_value_counted_before_a_change_is_never_read_after_it(ctx, alice):
    add_endpoints(alice.team_id, 2)
    computed = []

    def slow_count():
        # Another process adds an endpoint after this count began and before it is stored.
        computed.append(1)
        value = summaries._count()
        add_endpoints(alice.team_id, 1, prefix="late")
        return value

    with tenant_scope(alice.team_id):
        assert sum(count for _, _, count in summaries.cached("counts", slow_count)) == 2
        assert summaries.total() == 3
        assert summaries.total() == 3
    assert len(computed) == 1


def test_each_team_reads_its_own_summaries(make_app, alice, charlie):
    add_endpoints(alice.team_id, 3, prefix="alice")
    add_endpoints(charlie.team_id, 5, prefix="charlie", status="down")
    server = make_app()  # its own app: each request gets its own app context, as in production
    as_alice, as_charlie = server.test_client(), server.test_client()
    login(as_alice, alice)
    login(as_charlie, charlie)
    assert summary(as_alice) == "Showing 1–3 of 3"
    assert banner_counts(as_alice) == {"up": 0, "down": 0, "pending": 3, "paused": 0}
    assert summary(as_charlie) == "Showing 1–5 of 5"
    assert banner_counts(as_charlie) == {"up": 0, "down": 5, "pending": 0, "paused": 0}
    response = as_alice.get("/api/endpoints/", headers={"Authorization": f"Bearer {make_token(charlie)}"})
    assert response.get_json()["count"] == 5
    assert summary(as_alice) == "Showing 1–3 of 3"


@pytest.mark.parametrize("page_size", [7, 25])
def test_pages_started_from_anchors_hold_the_same_rows_as_plain_offsets(ctx, alice, monkeypatch, page_size):
    monkeypatch.setattr(summaries, "ANCHOR_EVERY", 10)
    add_endpoints(alice.team_id, 57)

    def check_every_page():
        with tenant_scope(alice.team_id):
            expected = list(db.session.execute(
                select(Endpoint.id).order_by(Endpoint.created_at.desc(), Endpoint.id.desc())
            ).scalars())
            pages = range(1, len(expected) // page_size + 2)
            listed = [row.id for page in pages for row in endpoints.list_endpoints(page, page_size).items]
            assert summaries.page_anchor(10) is not None
        assert listed == expected

    check_every_page()
    add_endpoints(alice.team_id, 4, prefix="new")  # newest first: every position moves by four
    check_every_page()
    with tenant_scope(alice.team_id):
        db.session.delete(db.session.execute(select(Endpoint).where(Endpoint.name == "svc-030")).scalar_one())
        db.session.commit()
    check_every_page()


def test_without_redis_the_pages_count_from_the_database(app, client, alice):
    add_endpoints(alice.team_id, 3)
    login(client, alice)
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    app.extensions.pop("monitorapp.redis", None)
    assert summary(client) == "Showing 1–3 of 3"
    assert banner_counts(client)["pending"] == 3
