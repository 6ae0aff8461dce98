"""POST /api/endpoints/: create, the one validation path, the first check."""

from __future__ import annotations

import ipaddress
import re

import pytest
from rq import Queue
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import AuditEvent, Endpoint
from monitorapp.tenancy import system_scope

PUBLIC = "https://93.184.216.34/health"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FIELDS = {
    "id", "name", "url", "interval_minutes", "paused", "status", "last_status_code", "last_latency_ms",
    "last_checked_at", "last_enqueued_at", "last_error", "created_at", "updated_at", "tenant_name",
}


def create(client, headers, **body):
    return client.post("/api/endpoints/", json=body, headers=headers)


def test_it_creates_an_endpoint(client, alice, alice_api):
    response = create(client, alice_api, url=PUBLIC, name="Shop", interval_minutes=2)
    assert response.status_code == 201
    data = response.get_json()
    assert set(data) == FIELDS
    assert data["name"] == "Shop"
    assert data["url"] == PUBLIC
    assert data["interval_minutes"] == 2
    assert data["paused"] is False
    assert data["status"] == "pending"
    assert data["tenant_name"] == "Team A"
    assert data["last_checked_at"] is None
    for key in ("created_at", "updated_at", "last_enqueued_at"):
        assert ISO_UTC.match(data[key]), data[key]
    assert response.headers["Location"].endswith(f"/api/endpoints/{data['id']}")
    fetched = client.get(response.headers["Location"], headers=alice_api).get_json()
    assert fetched == data
    with system_scope():
        endpoint = db.session.get(Endpoint, data["id"].replace("-", "") and __import__("uuid").UUID(data["id"]))
        assert endpoint.tenant_id == alice.team_id
        assert endpoint.created_by_id == alice.user_id


def test_it_defaults_the_name_to_the_host_and_the_interval_to_five(client, alice_api):
    data = create(client, alice_api, url="HTTPS://93.184.216.34:443").get_json()
    assert data["name"] == "93.184.216.34"
    assert data["url"] == "https://93.184.216.34/"
    assert data["interval_minutes"] == 5


def test_it_creates_a_paused_endpoint_without_a_check(client, alice_api, redis_client):
    data = create(client, alice_api, url=PUBLIC, paused=True).get_json()
    assert data["status"] == "paused"
    assert data["last_enqueued_at"] is None
    assert Queue("checks", connection=redis_client).count == 0


def test_it_writes_an_audit_event_with_the_endpoint(client, alice, alice_api):
    data = create(client, alice_api, url=PUBLIC).get_json()
    with system_scope():
        events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "endpoint.create")).scalars().all()
    assert [(event.target, event.actor_id, event.tenant_id) for event in events] == [
        (data["id"], alice.user_id, alice.team_id)
    ]


def test_create_enqueues_a_first_check(client, alice_api, queued_endpoint_ids):
    data = create(client, alice_api, url=PUBLIC).get_json()
    assert queued_endpoint_ids() == [data["id"]]


def test_with_redis_stopped_create_still_succeeds(make_app, alice, bearer, caplog):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    response = client.post("/api/endpoints/", json={"url": PUBLIC}, headers=bearer(alice))
    assert response.status_code == 201
    data = response.get_json()
    assert data["status"] == "pending"
    assert "check not enqueued" in caplog.text
    with app.app_context(), system_scope():
        endpoint = db.session.get(Endpoint, __import__("uuid").UUID(data["id"]))
        # Made due at once, so the scheduler's next tick claims it.
        assert endpoint.next_check_at <= endpoint.last_enqueued_at


@pytest.mark.parametrize(
    "url",
    ["HTTPS://93.184.216.34/health", "https://93.184.216.34:443/health", "https://93.184.216.34/health#top"],
)
def test_it_refuses_a_url_the_team_already_monitors_in_any_spelling(client, alice_api, url):
    assert create(client, alice_api, url=PUBLIC).status_code == 201
    response = create(client, alice_api, url=url)
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"url": ["Your team already monitors this URL."]}}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/", "private, local or reserved"),
        ("http://10.0.0.1/", "private, local or reserved"),
        ("http://169.254.169.254/latest/meta-data/", "private, local or reserved"),
        ("http://localhost:8080/", "private, local or reserved"),
        ("http://[::1]/", "private, local or reserved"),
        ("http://[::ffff:10.0.0.1]/", "private, local or reserved"),
        ("http://100.64.0.1/", "private, local or reserved"),
        ("http://0.0.0.0/", "private, local or reserved"),
        ("http://2130706433/", "four numbers"),
        ("http://0x7f.0.0.1/", "four numbers"),
        ("ftp://93.184.216.34/", "Only http and https"),
        ("javascript:alert(1)", "Only http and https"),
        ("93.184.216.34/health", "Start the URL with http"),
        ("https://user:pw@93.184.216.34/", "user name or password"),
        ("https://93.184.216.34:0/", "port"),
        ("https://93.184.216.34:70000/", "port"),
        ("https://93.184.216.34:http/", "port"),
        ("https:///nohost", "no host"),
        ("https://exa mple.com/", "spaces or control"),
        ("https://example.com/\x00", "spaces or control"),
        ("https://-bad-.example/", "host name in the URL is not valid"),
        ("https://name.invalid/", "could not be resolved"),
        ("https://93.184.216.34/" + "a" * 2048, "at most 2048"),
        ("", "Enter the URL"),
    ],
)
def test_it_refuses_a_bad_url_with_a_message_that_says_why(client, alice_api, url, message):
    response = create(client, alice_api, url=url)
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert list(errors) == ["url"]
    assert message in errors["url"][0]


def test_it_requires_a_url(client, alice_api):
    response = create(client, alice_api, name="no url")
    assert response.status_code == 400
    assert response.get_json()["errors"]["url"] == ["Enter the URL to monitor."]


@pytest.mark.parametrize("url", [123, None, ["https://93.184.216.34/"], {"href": "x"}])
def test_it_refuses_a_url_that_is_not_text(client, alice_api, url):
    response = create(client, alice_api, url=url)
    assert response.status_code == 400
    assert "url" in response.get_json()["errors"]


def test_an_allowed_private_network_opens_that_network_only(make_app, alice, bearer):
    app = make_app(ALLOWED_PRIVATE_NETWORKS=(ipaddress.ip_network("10.0.0.0/8"),))
    client = app.test_client()
    headers = bearer(alice)
    assert client.post("/api/endpoints/", json={"url": "http://10.0.0.1:8080/"}, headers=headers).status_code == 201
    refused = client.post("/api/endpoints/", json={"url": "http://192.168.1.1/"}, headers=headers)
    assert refused.status_code == 400
    assert client.post("/api/endpoints/", json={"url": "http://169.254.169.254/"}, headers=headers).status_code == 400


@pytest.mark.parametrize("interval", [0, -1, 1441, 2.5, "5", True, None, [5]])
def test_it_refuses_an_interval_out_of_bounds_or_not_a_whole_number(client, alice_api, interval):
    response = create(client, alice_api, url=PUBLIC, interval_minutes=interval)
    assert response.status_code == 400
    assert response.get_json()["errors"] == {
        "interval_minutes": ["Enter a whole number of minutes from 1 to 1440."]
    }


@pytest.mark.parametrize("interval", [1, 1440])
def test_it_accepts_the_interval_bounds(client, alice_api, interval):
    assert create(client, alice_api, url=PUBLIC, interval_minutes=interval).status_code == 201


@pytest.mark.parametrize("paused", ["yes", 1, None])
def test_it_refuses_a_paused_flag_that_is_not_a_boolean(client, alice_api, paused):
    response = create(client, alice_api, url=PUBLIC, paused=paused)
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"paused": ["Must be true or false."]}


@pytest.mark.parametrize(
    ("name", "message"),
    [("x" * 201, "at most 200"), ("bad\nname", "control characters"), (42, "as text")],
)
def test_it_refuses_a_bad_name(client, alice_api, name, message):
    response = create(client, alice_api, url=PUBLIC, name=name)
    assert response.status_code == 400
    assert message in response.get_json()["errors"]["name"][0]


@pytest.mark.parametrize("field", ["id", "status", "last_status_code", "last_checked_at", "created_at", "tenant_name"])
def test_it_refuses_read_only_fields(client, alice_api, field):
    response = create(client, alice_api, url=PUBLIC, **{field: "x"})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {field: ["This field is read-only."]}


def test_it_reports_every_problem_at_once(client, alice_api):
    response = create(client, alice_api, url="ftp://x", interval_minutes=0, colour="red")
    assert set(response.get_json()["errors"]) == {"url", "interval_minutes", "colour"}
    assert response.get_json()["errors"]["colour"] == ["Unknown field."]


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "null", "{not json", ""])
def test_it_refuses_a_body_that_is_not_a_json_object(client, alice_api, body):
    response = client.post("/api/endpoints/", data=body, content_type="application/json", headers=alice_api)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["body"]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_it_refuses_a_body_that_is_not_json_with_415(client, alice_api, content_type):
    response = client.post("/api/endpoints/", data="url=https://93.184.216.34/", content_type=content_type,
                           headers=alice_api)
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"


def test_it_refuses_a_body_over_the_limit_with_413(make_app, alice, bearer):
    client = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    response = client.post("/api/endpoints/", json={"url": PUBLIC, "name": "x" * 2000}, headers=bearer(alice))
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"
    with system_scope():
        assert db.session.execute(select(Endpoint)).first() is None
