"""GET /api/endpoints/: pagination, search and the status filter."""

from __future__ import annotations

import pytest

from tests.conftest import add_endpoints


def listing(client, headers, query=""):
    response = client.get(f"/api/endpoints/{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_an_empty_team_has_an_empty_first_page(client, alice_api):
    assert listing(client, alice_api) == {"count": 0, "next": None, "previous": None, "results": []}


def test_it_lists_newest_first_25_a_page(client, alice, alice_api):
    add_endpoints(alice.team_id, 30)
    data = listing(client, alice_api)
    assert data["count"] == 30
    assert len(data["results"]) == 25
    assert [item["name"] for item in data["results"][:3]] == ["svc-029", "svc-028", "svc-027"]
    assert data["previous"] is None
    assert data["next"] == "http://localhost/api/endpoints/?page=2&page_size=25"


def test_the_last_page_has_the_rest_and_no_next(client, alice, alice_api):
    add_endpoints(alice.team_id, 30)
    data = listing(client, alice_api, "?page=2")
    assert [item["name"] for item in data["results"]] == [f"svc-{n:03d}" for n in range(4, -1, -1)]
    assert data["next"] is None
    assert data["previous"] == "http://localhost/api/endpoints/?page=1&page_size=25"


def test_following_next_visits_every_endpoint_once(client, alice, alice_api):
    ids = add_endpoints(alice.team_id, 23)
    seen, url = [], "/api/endpoints/?page_size=10"
    while url:
        data = client.get(url, headers=alice_api).get_json()
        seen += [item["id"] for item in data["results"]]
        url = data["next"]
    assert sorted(seen) == sorted(str(i) for i in ids)


def test_a_page_past_the_end_is_empty_and_points_back_to_the_last_page(client, alice, alice_api):
    add_endpoints(alice.team_id, 30)
    data = listing(client, alice_api, "?page=9")
    assert data["count"] == 30
    assert data["results"] == []
    assert data["next"] is None
    assert data["previous"] == "http://localhost/api/endpoints/?page=2&page_size=25"


def test_page_size_up_to_100(client, alice, alice_api):
    add_endpoints(alice.team_id, 120)
    assert len(listing(client, alice_api, "?page_size=100")["results"]) == 100
    assert len(listing(client, alice_api, "?page_size=1")["results"]) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?page=0", "page"),
        ("?page=-1", "page"),
        ("?page=abc", "page"),
        ("?page=1.5", "page"),
        ("?page=", "page"),
        ("?page=%C2%B2", "page"),
        ("?page_size=0", "page_size"),
        ("?page_size=101", "page_size"),
        ("?page_size=x", "page_size"),
        ("?status=sideways", "status"),
        ("?status=", "status"),
        ("?search=" + "x" * 201, "search"),
    ],
)
def test_it_refuses_bad_parameters_with_field_messages(client, alice_api, query, field):
    response = client.get(f"/api/endpoints/{query}", headers=alice_api)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == [field]


def test_it_searches_names_and_urls_in_any_case(client, alice, alice_api):
    add_endpoints(alice.team_id, 3, prefix="shop")
    add_endpoints(alice.team_id, 2, prefix="blog")
    assert listing(client, alice_api, "?search=SHOP")["count"] == 3
    assert listing(client, alice_api, "?search=blog-001.example")["count"] == 1
    assert listing(client, alice_api, "?search=nothing")["count"] == 0


def test_search_treats_wildcards_as_text(client, alice, alice_api):
    add_endpoints(alice.team_id, 3)
    assert listing(client, alice_api, "?search=%25")["count"] == 0
    assert listing(client, alice_api, "?search=_")["count"] == 0


def test_it_filters_by_status_and_keeps_the_filter_in_the_links(client, alice, alice_api):
    add_endpoints(alice.team_id, 3, prefix="up", status="up")
    add_endpoints(alice.team_id, 30, prefix="down", status="down")
    data = listing(client, alice_api, "?status=down&search=down")
    assert data["count"] == 30
    assert {item["status"] for item in data["results"]} == {"down"}
    assert data["next"] == "http://localhost/api/endpoints/?page=2&page_size=25&search=down&status=down"
