"""A NUL character in any form field or query parameter is a 400 that changes nothing.

PostgreSQL refuses NUL in text, so a NUL that reached a query was a 500 (the
schemathesis run found it in the API's search; by hand it was also the
sign-in email, team and channel names and token names). The requests are the
CSRF suite's: one real request per state-changing route, with the right token,
each field in turn carrying a NUL.
"""

from __future__ import annotations

import pytest

from monitorapp.queues import connect
from tests.figures import record
from tests.security.test_csrf_routes import (  # noqa: F401 (fixtures)
    CALLS,
    app,
    changed,
    fingerprint,
    send,
    signed_in_client,
    state_changing_routes,
    world,
)


def test_a_nul_in_any_form_field_of_any_state_changing_route_is_refused(app, world):  # noqa: F811
    redis = connect(app.config["REDIS_URL"])
    cases = 0
    for view, rule, method in state_changing_routes(app):
        call = CALLS[view](world)
        for name in call.form:
            client, token = signed_in_client(app, world.alice)
            before = fingerprint(client, redis)
            poisoned = type(call)(call.path, {**call.form, name: call.form[name] + "\x00x"})
            response = send(app, client, method, poisoned, token=token)
            assert response.status_code == 400, (method, rule, name, response.status_code)
            assert "NUL" in response.get_data(as_text=True), (method, rule, name)
            assert changed(before, fingerprint(client, redis)) == [], (method, rule, name)
            cases += 1
    record("form fields refusing a NUL character", cases)
    assert cases >= 30


@pytest.mark.parametrize(
    "path",
    ["/dashboard?q=a%00b", "/incidents?page=1%00", "/channels?x=%00", "/team/audit?page=%00"],
)
def test_a_nul_in_a_query_parameter_is_refused(app, world, path):  # noqa: F811
    client, _ = signed_in_client(app, world.alice)
    with app.app_context():
        response = client.get(path)
    assert response.status_code == 400, (path, response.status_code)


def test_the_api_answers_a_nul_in_its_own_error_shape(app, world):  # noqa: F811
    from tests.conftest import make_token

    headers = {"Authorization": f"Bearer {make_token(world.alice)}"}
    client = app.test_client()
    with app.app_context():
        listed = client.get("/api/endpoints/?search=a%00b", headers=headers)
        created = client.post("/api/endpoints/", json={"url": "https://93.184.216.34/n", "name": "a\x00b"},
                              headers=headers)
    assert listed.status_code == 200 and listed.get_json()["count"] == 0
    assert created.status_code == 400, created.status_code
    assert created.get_json()["errors"]["name"] == ["A name cannot contain control characters."]
