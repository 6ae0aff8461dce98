"""Every page holds the right rows in the right order, from either end of the list."""

from __future__ import annotations

from monitorapp import endpoints
from monitorapp.tenancy import tenant_scope
from tests.conftest import add_endpoints


def test_pages_concatenate_to_the_newest_first_order(ctx, alice):
    add_endpoints(alice.team_id, 61)
    expected = [f"svc-{number:03d}" for number in reversed(range(61))]
    with tenant_scope(alice.team_id):
        pages = [endpoints.list_endpoints(page, 25) for page in (1, 2, 3)]
    # Page 3 lies past the middle, so it is read from the oldest end.
    assert [len(page.items) for page in pages] == [25, 25, 11]
    assert [item.name for page in pages for item in page.items] == expected


def test_the_last_page_of_a_search_is_exact(ctx, alice):
    add_endpoints(alice.team_id, 40, prefix="shop")
    add_endpoints(alice.team_id, 10, prefix="blog")
    with tenant_scope(alice.team_id):
        last = endpoints.list_endpoints(2, 25, search="shop")
    assert [item.name for item in last.items] == [f"shop-{number:03d}" for number in reversed(range(15))]


def test_a_search_that_matches_nothing_searches_once(ctx, alice):
    from sqlalchemy import event

    from monitorapp.extensions import db

    add_endpoints(alice.team_id, 5, prefix="shop")
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with tenant_scope(alice.team_id):
            empty = endpoints.list_endpoints(1, 25, search="no-such-thing")
            past_the_end = endpoints.list_endpoints(3, 25, search="shop")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert (empty.total, empty.items) == (0, [])
    # The empty first page says there are no matches; a page past the end still counts them.
    assert (past_the_end.total, past_the_end.items) == (5, [])
    assert len(statements) == 3
