"""GET, PATCH and DELETE /api/endpoints/<id>."""

from __future__ import annotations

import uuid

from rq import Queue
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import AuditEvent, Endpoint
from monitorapp.tenancy import system_scope
from tests.conftest import add_endpoints


def endpoint_row(endpoint_id):
    with system_scope():
        return db.session.execute(select(Endpoint).where(Endpoint.id == endpoint_id)).scalar_one_or_none()


def test_it_retrieves_an_endpoint(client, alice, alice_api):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    data = client.get(f"/api/endpoints/{endpoint_id}", headers=alice_api).get_json()
    assert data["id"] == str(endpoint_id)
    assert data["url"] == "https://svc-000.example.com/"


def test_it_changes_only_the_fields_given(client, alice, alice_api):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = client.patch(f"/api/endpoints/{endpoint_id}", json={"name": "Renamed", "interval_minutes": 60},
                            headers=alice_api)
    assert response.status_code == 200
    data = response.get_json()
    assert (data["name"], data["interval_minutes"], data["url"]) == ("Renamed", 60, "https://svc-000.example.com/")
    db.session.expire_all()
    assert endpoint_row(endpoint_id).name == "Renamed"


def test_an_empty_patch_changes_nothing(client, alice, alice_api):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = client.patch(f"/api/endpoints/{endpoint_id}", json={}, headers=alice_api)
    assert response.status_code == 200
    assert response.get_json()["name"] == "svc-000"


def test_pausing_and_resuming(client, alice, alice_api, redis_client, queued_endpoint_ids):
    (endpoint_id,) = add_endpoints(alice.team_id, 1, status="up")
    path = f"/api/endpoints/{endpoint_id}"
    paused = client.patch(path, json={"paused": True}, headers=alice_api).get_json()
    assert (paused["paused"], paused["status"]) == (True, "paused")
    assert Queue("checks", connection=redis_client).count == 0
    resumed = client.patch(path, json={"paused": False}, headers=alice_api).get_json()
    assert (resumed["paused"], resumed["status"]) == (False, "pending")
    assert queued_endpoint_ids() == [str(endpoint_id)]


def test_a_new_url_is_validated_normalised_and_checked_again(client, alice, alice_api, redis_client):
    (endpoint_id,) = add_endpoints(alice.team_id, 1, status="down")
    path = f"/api/endpoints/{endpoint_id}"
    assert client.patch(path, json={"url": "http://10.0.0.1/"}, headers=alice_api).status_code == 400
    data = client.patch(path, json={"url": "HTTP://93.184.216.34:80/x"}, headers=alice_api).get_json()
    assert (data["url"], data["status"]) == ("http://93.184.216.34/x", "pending")
    assert Queue("checks", connection=redis_client).count == 1


def test_it_refuses_a_url_another_endpoint_of_the_team_has(client, alice_api):
    first = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/a"}, headers=alice_api).get_json()
    second = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/b"}, headers=alice_api).get_json()
    response = client.patch(f"/api/endpoints/{second['id']}", json={"url": "HTTPS://93.184.216.34:443/a"},
                            headers=alice_api)
    assert response.status_code == 400
    assert response.get_json()["errors"]["url"] == ["Your team already monitors this URL."]
    # Its own URL is no conflict.
    same = client.patch(f"/api/endpoints/{first['id']}", json={"url": "https://93.184.216.34/a"}, headers=alice_api)
    assert same.status_code == 200


def test_patch_refuses_read_only_fields_and_bad_values(client, alice, alice_api):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = client.patch(f"/api/endpoints/{endpoint_id}",
                            json={"status": "up", "interval_minutes": 0, "url": None}, headers=alice_api)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {"status", "interval_minutes", "url"}
    assert endpoint_row(endpoint_id).status == "pending"


def test_patch_needs_a_json_body(client, alice, alice_api):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = client.patch(f"/api/endpoints/{endpoint_id}", data="name=x", headers=alice_api)
    assert response.status_code == 415


def test_it_deletes_an_endpoint_and_audits_it(client, alice, alice_api):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = client.delete(f"/api/endpoints/{endpoint_id}", headers=alice_api)
    assert response.status_code == 204
    assert response.data == b""
    assert endpoint_row(endpoint_id) is None
    assert client.get(f"/api/endpoints/{endpoint_id}", headers=alice_api).status_code == 404
    assert client.delete(f"/api/endpoints/{endpoint_id}", headers=alice_api).status_code == 404
    with system_scope():
        event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "endpoint.delete")).scalar_one()
    assert (event.target, event.actor_id, event.detail["url"]) == (
        str(endpoint_id), alice.user_id, "https://svc-000.example.com/"
    )


def test_deleting_an_unknown_id_is_404(client, alice_api):
    assert client.delete(f"/api/endpoints/{uuid.uuid4()}", headers=alice_api).status_code == 404
