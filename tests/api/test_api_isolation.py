"""Team isolation: another team's endpoints do not exist for you."""

from __future__ import annotations

from monitorapp.extensions import db
from monitorapp.models import Endpoint
from monitorapp.tenancy import system_scope
from tests.conftest import add_endpoints


def test_the_list_shows_only_the_tokens_team(client, alice, charlie, alice_api, charlie_api):
    add_endpoints(alice.team_id, 3, prefix="alice")
    add_endpoints(charlie.team_id, 2, prefix="charlie")
    alice_list = client.get("/api/endpoints/", headers=alice_api).get_json()
    charlie_list = client.get("/api/endpoints/", headers=charlie_api).get_json()
    assert alice_list["count"] == 3
    assert all(item["name"].startswith("alice") for item in alice_list["results"])
    assert all(item["tenant_name"] == "Team A" for item in alice_list["results"])
    assert charlie_list["count"] == 2
    assert all(item["tenant_name"] == "Team B" for item in charlie_list["results"])


def test_it_answers_404_for_another_teams_endpoint(client, alice, charlie_api):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    path = f"/api/endpoints/{endpoint_id}"
    assert client.get(path, headers=charlie_api).status_code == 404
    assert client.patch(path, json={"name": "mine now"}, headers=charlie_api).status_code == 404
    assert client.delete(path, headers=charlie_api).status_code == 404
    with system_scope():
        endpoint = db.session.get(Endpoint, endpoint_id)
        assert endpoint is not None and endpoint.name == "svc-000"


def test_the_same_url_may_be_monitored_by_two_teams(client, alice_api, charlie_api):
    body = {"url": "https://93.184.216.34/status"}
    assert client.post("/api/endpoints/", json=body, headers=alice_api).status_code == 201
    assert client.post("/api/endpoints/", json=body, headers=charlie_api).status_code == 201


def test_search_does_not_reach_into_another_team(client, alice, charlie, charlie_api):
    add_endpoints(alice.team_id, 2, prefix="secret")
    response = client.get("/api/endpoints/?search=secret", headers=charlie_api).get_json()
    assert response["count"] == 0
