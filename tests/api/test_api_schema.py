"""The OpenAPI document is true: it covers every route, and a fuzzer finds no lie."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from monitorapp.api.openapi import openapi_document
from tests.conftest import add_endpoints


def test_the_document_is_openapi_3_1_and_served_without_a_token(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert document == openapi_document()


def test_every_api_route_and_method_is_documented(app):
    document = openapi_document()
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/endpoints"):
            continue
        path = rule.rule.replace("<uuid:endpoint_id>", "{endpoint_id}")
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


def test_the_docs_page_lists_every_operation(client):
    page = client.get("/api/").get_data(as_text=True)
    for operation_id in ("listEndpoints", "createEndpoint", "getEndpoint", "updateEndpoint", "deleteEndpoint"):
        assert f'id="{operation_id}"' in page
    assert "/api/openapi.json" in page
    assert "Authorization: Bearer" in page


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_a_fuzzer_finds_no_server_error_and_no_response_off_the_document(make_app, alice, bearer, mode):
    app = make_app(RATELIMIT_ENABLED=False)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = bearer(alice)
    known = [str(endpoint_id) for endpoint_id in add_endpoints(alice.team_id, 5)]

    @given(case=schema.as_strategy(generation_mode=mode, headers=headers), known_id=st.sampled_from([None, *known]))
    @settings(
        max_examples=100,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case, known_id):
        # Half the calls on a path with an id aim at an endpoint that exists.
        if known_id and "endpoint_id" in (case.path_parameters or {}):
            case.path_parameters["endpoint_id"] = known_id
        # A URL that matches the schema may still be refused: whether its host
        # resolves, and only to public addresses, is not something a schema
        # can say. Everything else is checked, including that invalid input is refused.
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    run()
