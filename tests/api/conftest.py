"""Fixtures for the JSON API tests."""

from __future__ import annotations

import pytest

from monitorapp.models import TokenScope
from tests.conftest import make_token


@pytest.fixture
def bearer():
    """`bearer(alice)` → headers with a fresh write token of alice; `bearer(alice, TokenScope.READ)`."""

    def headers(actor, scope: TokenScope = TokenScope.WRITE) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(actor, scope)}"}

    return headers


@pytest.fixture
def alice_api(bearer, alice):
    return bearer(alice)


@pytest.fixture
def charlie_api(bearer, charlie):
    return bearer(charlie)


@pytest.fixture
def queued_endpoint_ids(redis_client):
    """The ids of the endpoints whose checks wait on the real `checks` queue, in order."""
    from rq import Queue

    def ids() -> list[str]:
        found: list[str] = []

        def walk(value) -> None:
            if isinstance(value, (list, tuple)):
                for item in value:
                    walk(item)
            elif isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
                found.append(value)

        for job in Queue("checks", connection=redis_client).jobs:
            walk(job.args)
        return found

    return ids
