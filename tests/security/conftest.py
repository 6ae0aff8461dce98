"""Fixtures of the outbound-request suites: the canary and the connection guard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.figures import add
from tests.security.canary import Canary, ConnectionGuard, guarded


@pytest.fixture
def canary() -> Iterator[Canary]:
    """A listener where every hostile URL points; it must never be reached."""
    canary = Canary()
    yield canary
    canary.close()
    add("canary connections", canary.connections)
    assert canary.connections == 0, f"the canary received {canary.connections} connection(s)"


@pytest.fixture
def guard() -> Iterator[ConnectionGuard]:
    """Every connect of the process during the test; none may leave loopback."""
    with guarded() as guard:
        yield guard
    add("connections attempted off loopback", len(guard.off_loopback))
    assert guard.off_loopback == [], f"connections off loopback were attempted: {guard.off_loopback}"
