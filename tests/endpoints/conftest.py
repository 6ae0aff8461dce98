"""Fixtures for the dashboard tests."""

from __future__ import annotations

import pytest

from tests.conftest import login


@pytest.fixture
def as_alice(client, alice):
    """The test client, signed in as alice (owner of team A)."""
    login(client, alice)
    return client
