"""A long schemathesis run against /api/openapi.json: over a thousand generated calls.

tests/api/test_api_schema.py runs a short fuzz on every build; this one runs
every operation with valid and invalid data, deterministically (Hypothesis
derandomized, no example database), with a write token of alice and the
ids of endpoints that exist, so retrieve, change and delete reach real rows
and not only 404s.

Every response must be no 5xx, and must match the document: a documented
status code, its content type, its body schema and its headers; invalid
data must be refused. Valid data must be accepted too, except a generated
`url`: whether a host resolves, and only to public addresses, is something a
schema cannot say (and this machine may have no DNS at all). So half of the
valid create and change calls get a public IP-literal URL of their own, and
those must be accepted like everything else.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from monitorapp.extensions import db
from monitorapp.models import Endpoint
from monitorapp.tenancy import tenant_scope
from tests.conftest import add_endpoints, fresh, login
from tests.figures import record

# Generated calls per operation and mode: 5 operations x 2 modes x 110 = 1,100 at most.
EXAMPLES = 110
MINIMUM_CASES = 1000
WRITES_WITH_A_URL = {"createEndpoint", "updateEndpoint"}


@pytest.fixture
def app(make_app, redis_url):
    # A thousand calls with one token: the API rate limit has its own tests.
    yield from fresh(make_app(RATELIMIT_ENABLED=False), redis_url)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_a_thousand_generated_calls_find_no_server_error_and_nothing_off_the_document(app, alice, bearer):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = bearer(alice)
    known = [str(endpoint_id) for endpoint_id in add_endpoints(alice.team_id, 8, prefix="fuzz")]
    fresh_urls = (f"https://93.184.216.34/fuzz/{number}" for number in itertools.count())
    ran: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def restore(endpoint_id: str) -> None:
        """Put a deleted known endpoint back, so later calls still find it."""
        with tenant_scope(alice.team_id):
            db.session.add(Endpoint(id=uuid.UUID(endpoint_id), name="fuzz-again", url=next(fresh_urls)))
            db.session.commit()
        db.session.expunge_all()

    def fuzz(operation, operation_id: str, mode: GenerationMode) -> None:
        @given(
            case=operation.as_strategy(generation_mode=mode, headers=headers),
            pick=st.integers(min_value=0, max_value=2 * len(known) - 1),
        )
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case, pick: int) -> None:
            # Half the calls on a path with an id aim at an endpoint that exists.
            if pick < len(known) and "endpoint_id" in (case.path_parameters or {}):
                case.path_parameters["endpoint_id"] = known[pick]
            body = case.body if isinstance(case.body, dict) else None
            positive = mode is GenerationMode.POSITIVE and body is not None
            if positive and operation_id in WRITES_WITH_A_URL and pick % 2 == 0:
                body["url"] = next(fresh_urls)  # public and not yet used: must be accepted
            excluded = []
            if positive and "url" in body and not str(body["url"]).startswith("https://93.184.216.34/fuzz/"):
                excluded.append(positive_data_acceptance)
            response = case.call_and_validate(headers=headers, excluded_checks=excluded)
            ran[f"{operation_id} {mode.value}"] += 1
            statuses[response.status_code] += 1
            endpoint_id = (case.path_parameters or {}).get("endpoint_id")
            if case.method.upper() == "DELETE" and response.status_code == 204 and endpoint_id in known:
                restore(endpoint_id)

        run()

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, operation.definition.raw["operationId"], mode)

    total = sum(ran.values())
    record("schemathesis cases", total)
    record("schemathesis responses by status", ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items())))
    assert total >= MINIMUM_CASES, dict(ran)
    assert len(ran) == 10, dict(ran)  # every operation, valid and invalid data
    # The calls reached real rows, not only refusals.
    assert statuses[200] > 50 and statuses[201] > 10 and statuses[204] > 10, dict(statuses)


# -- what the fuzzer found, kept as quick tests that run everywhere -----------------------------


def test_a_search_page_past_any_number_is_an_empty_page(client, alice, alice_api):
    add_endpoints(alice.team_id, 2)
    for page in (16180815113179498496, 2**63, 2**53 + 1):
        response = client.get(
            "/api/endpoints/", query_string={"search": "svc", "page": page, "page_size": 100}, headers=alice_api
        )
        assert response.status_code == 200, (page, response.status_code)
        body = response.get_json()
        assert body["count"] == 2 and body["results"] == [], page


def test_a_search_holding_a_nul_finds_nothing_instead_of_failing(client, alice, alice_api):
    add_endpoints(alice.team_id, 2)
    response = client.get("/api/endpoints/", query_string={"search": "svc\x00"}, headers=alice_api)
    assert response.status_code == 200
    assert response.get_json() == {"count": 0, "next": None, "previous": None, "results": []}
    # Pages refuse a NUL in any parameter at the door (errors.py; tests/security/test_nul_input.py).
    login(client, alice)
    page = client.get("/dashboard", query_string={"q": "svc\x00"})
    assert page.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        '{"url": "https://93.184.216.34/a", "name": "\\ud800 half a pair"}',
        '{"url": "https://93.184.216.34/\\udfff"}',
    ],
)
def test_a_body_with_an_unpaired_surrogate_is_refused_as_a_field_error(client, alice, alice_api, body):
    headers = {**alice_api, "Content-Type": "application/json"}
    response = client.post("/api/endpoints/", data=body, headers=headers)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["body"]
    assert client.get("/api/endpoints/", headers=alice_api).get_json()["count"] == 0


def test_an_interval_written_as_a_whole_float_is_the_integer_json_schema_says_it_is(client, alice, alice_api):
    response = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/", "interval_minutes": 143.0},
                           headers=alice_api)
    assert response.status_code == 201
    assert response.get_json()["interval_minutes"] == 143
    refused = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/b", "interval_minutes": 14.5},
                          headers=alice_api)
    assert refused.status_code == 400
