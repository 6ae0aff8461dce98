"""Error pages for people, JSON for the API, nothing internal for anyone."""

from __future__ import annotations

import pytest


@pytest.fixture
def production_app(make_app):
    app = make_app(MODE="production", SKIP_DEPLOY_CHECK=True, DEBUG=False, TESTING=False, PROPAGATE_EXCEPTIONS=False)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals: password=hunter2 at /srv/app/db.py line 42")

    @app.get("/api/boom")
    def api_boom():
        raise RuntimeError("secret internals: password=hunter2")

    return app


def test_a_missing_page_renders_in_the_layout(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "<nav>" in body and "Not found" in body


def test_a_missing_api_resource_answers_json(client):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_the_wrong_method_answers_405_with_a_page(client):
    response = client.delete("/health/")
    assert response.status_code == 405


def test_an_htmx_request_gets_an_error_fragment_not_a_page(client):
    response = client.get("/no-such-page", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert "<html" not in response.get_data(as_text=True)


def test_a_too_large_form_answers_413_with_a_page(client, app):
    response = client.post("/logout", data={"csrf_token": "x", "filler": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)})
    assert response.status_code == 413
    assert "Too large" in response.get_data(as_text=True)


def test_production_500_page_reveals_nothing(production_app):
    response = production_app.test_client().get("/boom", base_url="https://localhost")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong" in body
    assert "hunter2" not in body and "Traceback" not in body and "RuntimeError" not in body


def test_production_500_json_reveals_nothing(production_app):
    response = production_app.test_client().get("/api/boom", base_url="https://localhost")
    assert response.status_code == 500
    assert response.get_json() == {"error": "server_error", "message": response.get_json()["message"]}
    assert "hunter2" not in response.get_data(as_text=True)


def test_production_redirects_plain_http_to_https(production_app):
    response = production_app.test_client().get("/", base_url="http://status.example.com")
    assert response.status_code == 308
    assert response.headers["Location"].startswith("https://status.example.com/")


def test_production_sends_hsts_over_https(production_app):
    response = production_app.test_client().get("/", base_url="https://status.example.com")
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]


def test_health_is_reachable_over_plain_http_in_production(production_app):
    # Platform health checks often probe the dyno directly over HTTP.
    assert production_app.test_client().get("/health/").status_code == 200
