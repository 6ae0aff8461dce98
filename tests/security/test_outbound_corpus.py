"""The outbound-request policy against a corpus of hostile URLs.

Each URL is refused when an endpoint is created (form and API) or updated,
and a canary listener on loopback — the port every loopback spelling points
at — must never receive a connection.
"""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import func, select

from monitorapp.extensions import db
from monitorapp.models import Endpoint
from monitorapp.monitoring.policy import is_allowed_address
from monitorapp.monitoring.urls import UrlError, validate_url
from monitorapp.tenancy import tenant_scope
from tests.conftest import csrf_token, login, make_token
from tests.security.corpus import RESOLVED_NAMES, corpus


def test_the_corpus_is_large():
    assert len(corpus(8080)) >= 150


def test_validation_refuses_every_hostile_url(canary):
    accepted = []
    for url in corpus(canary.port):
        try:
            validate_url(url)
        except UrlError:
            continue
        accepted.append(url)
    assert accepted == []


def test_validation_refuses_names_that_resolve_to_blocked_addresses():
    def resolver(host: str, port: int) -> list[str]:
        return RESOLVED_NAMES[host]

    for name in RESOLVED_NAMES:
        with pytest.raises(UrlError, match="private, local or reserved"):
            validate_url(f"https://{name}/", resolver=resolver)


def test_the_api_refuses_every_hostile_url_and_saves_nothing(client, alice, canary):
    token = make_token(alice)
    headers = {"Authorization": f"Bearer {token}"}
    for url in corpus(canary.port):
        response = client.post("/api/endpoints/", json={"url": url}, headers=headers)
        assert response.status_code == 400, (url, response.status_code)
        assert "url" in response.get_json()["errors"], url
    with tenant_scope(alice.team_id):
        assert db.session.execute(select(func.count(Endpoint.id))).scalar() == 0


def test_the_api_refuses_every_hostile_url_on_update(client, alice, canary):
    token = make_token(alice)
    headers = {"Authorization": f"Bearer {token}"}
    created = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    endpoint_id = created.get_json()["id"]
    for url in corpus(canary.port):
        response = client.patch(f"/api/endpoints/{endpoint_id}", json={"url": url}, headers=headers)
        assert response.status_code == 400, (url, response.status_code)
    assert client.get(f"/api/endpoints/{endpoint_id}", headers=headers).get_json()["url"] == "https://93.184.216.34/"


def test_the_dashboard_form_refuses_every_hostile_url(client, alice, canary):
    login(client, alice)
    token = csrf_token(client, "/dashboard")
    for url in corpus(canary.port):
        response = client.post(
            "/dashboard/endpoints",
            data={"url": url, "name": "", "interval_minutes": "5", "csrf_token": token},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 422, (url, response.status_code)
    with tenant_scope(alice.team_id):
        assert db.session.execute(select(func.count(Endpoint.id))).scalar() == 0


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.0", True),
        ("10.1.2.255", True),
        ("10.1.2.77", True),
        ("10.1.1.255", False),
        ("10.1.3.0", False),
        ("10.0.0.1", False),
        ("127.0.0.1", False),
        ("::ffff:10.1.2.5", False),
        ("fd00:1::", True),
        ("fd00:1::ffff", True),
        ("fd00:2::", False),
        ("fe80::1", False),
        ("93.184.216.34", True),
    ],
)
def test_the_allow_list_opens_exactly_the_listed_networks(address, allowed):
    networks = (ipaddress.ip_network("10.1.2.0/24"), ipaddress.ip_network("fd00:1::/112"))
    assert is_allowed_address(address, networks) is allowed


def test_the_allow_list_opens_a_listed_network_for_validation():
    networks = (ipaddress.ip_network("192.168.50.0/24"),)
    assert validate_url("http://192.168.50.10:8080/health", allowed_networks=networks) == "http://192.168.50.10:8080/health"
    with pytest.raises(UrlError):
        validate_url("http://192.168.51.10/", allowed_networks=networks)
