"""Until the address is verified, a person looks around but adds no endpoints."""

from __future__ import annotations

import pytest

from monitorapp.models import Role
from tests.auth.conftest import post_form
from tests.conftest import Actor, login, make_token, make_user


@pytest.fixture
def uma(team_a) -> Actor:
    """An unverified member of team A."""
    user = make_user("uma@example.com", team_a, Role.MEMBER, verified=False)
    return Actor(user.id, "uma@example.com", team_a.id, Role.MEMBER)


def test_an_unverified_member_can_look_around(client, uma):
    login(client, uma)
    for path in ("/dashboard", "/team", "/account"):
        assert client.get(path).status_code == 200, path


def test_an_unverified_members_token_cannot_add_endpoints(client, uma):
    secret = make_token(uma)
    response = client.post(
        "/api/endpoints/",
        json={"name": "x", "url": "https://example.com/"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 403
    assert "Verify your email address" in response.get_json()["message"]
    assert client.get("/api/endpoints/", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_an_unverified_member_cannot_add_endpoints_from_the_dashboard(client, uma):
    login(client, uma)
    response = post_form(
        client,
        "/dashboard/endpoints",
        {"url": "https://example.com/", "name": "x", "interval_minutes": "5"},
        page="/dashboard",
    )
    assert response.status_code in (403, 422)
    assert "Verify your email address" in response.get_data(as_text=True)
