"""The current team (tenant) and the ORM row filter that fails closed.

Every model that belongs to a team inherits `TenantScoped`. A
`do_orm_execute` hook adds `tenant_id == current team` to every ORM SELECT,
UPDATE and DELETE that touches such a model (joins and relationship loads
included), and a `before_flush` hook stamps new rows with the current team.

With no current team, a query on a team-owned model raises
`TenantScopeError` — unless the code asked for the system scope, either for
a block (`with system_scope():`) or for one statement
(`.execution_options(system_scope=True)`). Both spellings contain the words
`system_scope`, so every unscoped query is one grep away.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

from flask import g, has_app_context
from sqlalchemy import Table, event, orm
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column, with_loader_criteria
from sqlalchemy.sql import visitors

from monitorapp.extensions import db

_tenant: ContextVar[uuid.UUID | None] = ContextVar("monitorapp_tenant", default=None)
_system: ContextVar[bool] = ContextVar("monitorapp_system_scope", default=False)


class TenantScopeError(RuntimeError):
    """A team-owned model was queried with no current team and no system scope."""


class TenantScoped:
    """Mixin for every model that belongs to one team."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(db.ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)


def current_tenant_id() -> uuid.UUID | None:
    if has_app_context() and "tenant_id" in g:
        return g.tenant_id
    return _tenant.get()


def set_current_tenant(tenant_id: uuid.UUID | None) -> None:
    """Make `tenant_id` the current team for the rest of this request."""
    if has_app_context():
        g.tenant_id = tenant_id
    else:
        _tenant.set(tenant_id)


@contextlib.contextmanager
def tenant_scope(tenant_id: uuid.UUID) -> Iterator[None]:
    """Run a block as one team (jobs and scripts that act for a team)."""
    previous_g = g.get("tenant_id", None) if has_app_context() else None
    had_g = has_app_context() and "tenant_id" in g
    token = _tenant.set(tenant_id)
    if has_app_context():
        g.tenant_id = tenant_id
    try:
        yield
    finally:
        _tenant.reset(token)
        if has_app_context():
            if had_g:
                g.tenant_id = previous_g
            else:
                g.pop("tenant_id", None)


@contextlib.contextmanager
def system_scope() -> Iterator[None]:
    """Run a block across all teams: the scheduler, workers and housekeeping."""
    token = _system.set(True)
    try:
        yield
    finally:
        _system.reset(token)


def in_system_scope() -> bool:
    return _system.get()


def _tenant_tables() -> frozenset[str]:
    tables = {
        mapper.local_table.name
        for mapper in db.Model.registry.mappers
        if issubclass(mapper.class_, TenantScoped)
    }
    return frozenset(tables)


def _touches_tenant_data(state: orm.ORMExecuteState) -> bool:
    """True if any table of a team-owned model appears anywhere in the statement.

    `all_mappers` only sees the top level; a legacy `Query.count()` hides the
    entity inside a subquery, so walk the whole statement instead.
    """
    if any(issubclass(mapper.class_, TenantScoped) for mapper in state.all_mappers):
        return True
    names = _tenant_tables()
    return any(
        isinstance(element, Table) and element.name in names for element in visitors.iterate(state.statement)
    )


@event.listens_for(Session, "do_orm_execute")
def _filter_by_tenant(state: orm.ORMExecuteState) -> None:
    if state.is_column_load or not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("system_scope") or in_system_scope():
        return
    tenant_id = current_tenant_id()
    if tenant_id is None:
        if not _touches_tenant_data(state):
            return
        raise TenantScopeError(
            "query on a team-owned model with no current team; "
            "use tenant_scope(...) or, for cross-team work, system_scope()"
        )
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_and_guard_tenant(session: Session, flush_context, instances) -> None:
    system = in_system_scope()
    tenant_id = current_tenant_id()
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        if obj in session.new and obj.tenant_id is None:
            if tenant_id is None:
                raise TenantScopeError(f"new {type(obj).__name__} has no team and there is no current team")
            obj.tenant_id = tenant_id
        if not system and tenant_id is not None and obj.tenant_id != tenant_id:
            raise TenantScopeError(f"{type(obj).__name__} belongs to another team")
        if not system and tenant_id is None:
            raise TenantScopeError(f"writing {type(obj).__name__} with no current team outside the system scope")
