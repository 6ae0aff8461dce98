"""Who may call the API: tokens, scopes and roles."""

from __future__ import annotations

import uuid

import pytest

from monitorapp.extensions import db
from monitorapp.models import TokenScope, User
from monitorapp.tenancy import system_scope
from tests.conftest import add_endpoints, login

OPERATIONS = [
    ("get", "/api/endpoints/"),
    ("post", "/api/endpoints/"),
    ("get", "/api/endpoints/{id}"),
    ("patch", "/api/endpoints/{id}"),
    ("delete", "/api/endpoints/{id}"),
]
WRITES = [op for op in OPERATIONS if op[0] != "get"]


def call(client, method, path, endpoint_id, headers):
    body = {"url": "https://93.184.216.34/"} if method in ("post", "patch") else None
    return getattr(client, method)(path.format(id=endpoint_id), json=body, headers=headers)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_it_requires_a_token(client, alice, method, path):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = call(client, method, path, endpoint_id, {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"] == "unauthorized"


@pytest.mark.parametrize("header", ["Bearer mon_not-a-real-token", "Bearer nope", "Basic YWxpY2U6cHc=", "Bearer "])
def test_it_rejects_a_wrong_token(client, alice, header):
    response = client.get("/api/endpoints/", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_does_not_fall_back_to_the_session(client, alice):
    login(client, alice)
    response = client.get("/api/endpoints/", headers={"Authorization": "Bearer mon_wrong"})
    assert response.status_code == 401


def test_it_rejects_a_revoked_token(client, alice, bearer):
    from monitorapp.models import ApiToken, utcnow

    headers = bearer(alice)
    with system_scope():
        for token in db.session.query(ApiToken).all():
            token.revoked_at = utcnow()
        db.session.commit()
    assert client.get("/api/endpoints/", headers=headers).status_code == 401


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_it_refuses_writes_with_a_read_only_token(client, alice, bearer, method, path):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = call(client, method, path, endpoint_id, bearer(alice, TokenScope.READ))
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_it_refuses_writes_by_a_viewer_even_with_a_write_token(client, victor, bearer, method, path):
    (endpoint_id,) = add_endpoints(victor.team_id, 1)
    response = call(client, method, path, endpoint_id, bearer(victor, TokenScope.WRITE))
    assert response.status_code == 403


def test_a_read_only_token_may_list_and_retrieve(client, alice, bearer):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    headers = bearer(alice, TokenScope.READ)
    assert client.get("/api/endpoints/", headers=headers).get_json()["count"] == 1
    assert client.get(f"/api/endpoints/{endpoint_id}", headers=headers).status_code == 200


def test_a_member_may_write(client, bob, bearer):
    response = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/"}, headers=bearer(bob))
    assert response.status_code == 201


def test_it_refuses_create_for_an_unverified_user(client, alice, bearer):
    with system_scope():
        db.session.get(User, alice.user_id).email_verified_at = None
        db.session.commit()
    response = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/"}, headers=bearer(alice))
    assert response.status_code == 403
    assert "verify" in response.get_json()["message"].lower()


def test_it_answers_unknown_ids_with_404(client, alice_api):
    response = client.get(f"/api/endpoints/{uuid.uuid4()}", headers=alice_api)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert client.get("/api/endpoints/not-a-uuid", headers=alice_api).status_code == 404


@pytest.mark.parametrize(("method", "path"), [("put", "/api/endpoints/"), ("delete", "/api/endpoints/"),
                                              ("put", "/api/endpoints/{id}"), ("post", "/api/endpoints/{id}")])
def test_it_rejects_other_methods_with_405(client, alice, alice_api, method, path):
    (endpoint_id,) = add_endpoints(alice.team_id, 1)
    response = getattr(client, method)(path.format(id=endpoint_id), json={}, headers=alice_api)
    assert response.status_code == 405
    assert "Allow" in response.headers
    assert response.get_json()["error"] == "method_not_allowed"


def test_it_rate_limits_per_token(make_app, alice, bearer):
    app = make_app(API_RATE_LIMIT="3 per minute")
    client = app.test_client()
    headers = bearer(alice)
    statuses = [client.get("/api/endpoints/", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/endpoints/", headers=headers)
    assert limited.get_json()["error"] == "rate_limited"
    assert "Retry-After" in limited.headers
    # Another token has its own budget.
    assert client.get("/api/endpoints/", headers=bearer(alice)).status_code == 200
