"""Teams: invitations, roles, members, renaming and deleting.

Every function here runs in the current team's scope (the request's team),
except the invitation lookups, which start from a signed link and so find
their team first.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func, select

from monitorapp.auth import audit, links
from monitorapp.extensions import db
from monitorapp.logging import AUDIT, log_event
from monitorapp.mail import send_mail
from monitorapp.models import ApiToken, Invitation, Membership, Role, Tenant, User, utcnow
from monitorapp.tenancy import current_tenant_id, system_scope, tenant_scope


class TeamError(ValueError):
    """A team change that would break a rule; the message is for the user."""


def current_team() -> Tenant:
    return db.session.execute(select(Tenant).where(Tenant.id == current_tenant_id())).scalar_one()


def members() -> list[Membership]:
    query = select(Membership).join(User, Membership.user_id == User.id).order_by(Membership.created_at)
    return list(db.session.execute(query).scalars())


def get_member(membership_id: uuid.UUID) -> Membership | None:
    return db.session.execute(select(Membership).where(Membership.id == membership_id)).scalar_one_or_none()


def pending_invitations() -> list[Invitation]:
    query = (
        select(Invitation)
        .where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at > utcnow())
        .order_by(Invitation.created_at.desc())
    )
    return list(db.session.execute(query).scalars())


def rename(name: str) -> None:
    team = current_team()
    old = team.name
    team.name = name.strip()
    audit.record("team.renamed", target=team.name, detail={"from": old})
    db.session.commit()


def _lock_team() -> Tenant:
    """Lock the team row so concurrent role changes cannot remove the last owner."""
    query = select(Tenant).where(Tenant.id == current_tenant_id()).with_for_update()
    return db.session.execute(query).scalar_one()


def _owner_count() -> int:
    query = select(func.count()).select_from(Membership).where(Membership.role == Role.OWNER.value)
    return db.session.execute(query).scalar_one()


def change_role(membership: Membership, role: Role) -> None:
    _lock_team()
    if membership.role == Role.OWNER.value and role is not Role.OWNER and _owner_count() <= 1:
        db.session.rollback()
        raise TeamError("A team needs at least one owner. Make someone else an owner first.")
    old = membership.role
    membership.role = role.value
    if not role.can_write:
        # A viewer's tokens can only read; downgrade any that could write.
        db.session.execute(
            ApiToken.__table__.update()
            .where(ApiToken.user_id == membership.user_id, ApiToken.tenant_id == membership.tenant_id)
            .values(scope="read")
        )
    audit.record("member.role_changed", target=membership.user.email, detail={"from": old, "to": role.value})
    db.session.commit()


def remove_member(membership: Membership) -> None:
    _lock_team()
    if membership.role == Role.OWNER.value and _owner_count() <= 1:
        db.session.rollback()
        raise TeamError("A team needs at least one owner. Make someone else an owner first.")
    email = membership.user.email
    # The member's tokens for this team die with the membership.
    db.session.execute(delete(ApiToken).where(ApiToken.user_id == membership.user_id))
    db.session.delete(membership)
    audit.record("member.removed", target=email, detail={"role": membership.role})
    db.session.commit()


def delete_team() -> None:
    """Delete the current team and everything it owns."""
    team = current_team()
    team_id, name = team.id, team.name
    # Every team-owned table has tenant_id; delete children before parents so
    # this works whether or not the database enforces ON DELETE CASCADE.
    with system_scope():
        for table in reversed(db.metadata.sorted_tables):
            if "tenant_id" in table.c:
                db.session.execute(delete(table).where(table.c.tenant_id == team_id))
        db.session.execute(delete(Tenant.__table__).where(Tenant.__table__.c.id == team_id))
        db.session.commit()
    # The team's audit log went with it; the log line is the record.
    log_event(AUDIT, "team.deleted", action="team.deleted", tenant_id=str(team_id), target=name)


def create_team(user: User, name: str) -> Tenant:
    """A new team owned by `user` (who may already belong to others)."""
    team = Tenant(name=name.strip())
    db.session.add(team)
    db.session.flush()
    with tenant_scope(team.id):
        db.session.add(Membership(user_id=user.id, tenant_id=team.id, role=Role.OWNER.value))
        audit.record("team.created", target=team.name, actor_id=user.id)
        db.session.commit()
    return team


# -- invitations ----------------------------------------------------------------


def invite(email: str, role: Role, inviter: User) -> Invitation:
    """Invite `email` into the current team and mail them the link."""
    email = email.strip().lower()
    already = db.session.execute(
        select(Membership).join(User, Membership.user_id == User.id).where(User.email == email)
    ).scalar_one_or_none()
    if already is not None:
        raise TeamError(f"{email} is already in this team.")
    # A new invitation replaces any pending one for the same address.
    for old in db.session.execute(
        select(Invitation).where(
            Invitation.email == email, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)
        )
    ).scalars():
        old.revoked_at = utcnow()
    invitation = Invitation(
        email=email,
        role=role.value,
        invited_by_id=inviter.id,
        expires_at=utcnow() + links.INVITATION_MAX_AGE,
    )
    db.session.add(invitation)
    db.session.flush()
    audit.record("invitation.sent", target=email, detail={"role": role.value})
    team = current_team()
    db.session.commit()
    link = links.absolute_url("auth.invitation", token=links.invitation_token(invitation.id))
    days = links.INVITATION_MAX_AGE // timedelta(days=1)
    send_mail(email, "invitation", team=team.name, inviter=inviter.email, role=role.value, link=link, days=days)
    return invitation


def get_invitation(invitation_id: uuid.UUID) -> Invitation | None:
    return db.session.execute(select(Invitation).where(Invitation.id == invitation_id)).scalar_one_or_none()


def revoke_invitation(invitation: Invitation) -> None:
    invitation.revoked_at = utcnow()
    audit.record("invitation.revoked", target=invitation.email)
    db.session.commit()


def invitation_from_link(token: str) -> Invitation | None:
    """The open invitation a link names, across teams; None if bad, used, revoked or expired."""
    invitation_id = links.read_invitation_token(token)
    if invitation_id is None:
        return None
    invitation = db.session.execute(
        select(Invitation)
        .where(Invitation.id == invitation_id)
        .execution_options(system_scope=True)  # the signed link names its team
    ).scalar_one_or_none()
    if invitation is None or invitation.accepted_at or invitation.revoked_at or invitation.expires_at <= utcnow():
        return None
    return invitation


def team_name(tenant_id: uuid.UUID) -> str:
    return db.session.execute(select(Tenant.name).where(Tenant.id == tenant_id)).scalar_one()


def accept_invitation(invitation: Invitation, user: User) -> None:
    """Add `user` to the invitation's team with its role (committed)."""
    with tenant_scope(invitation.tenant_id):
        existing = db.session.execute(
            select(Membership).where(Membership.user_id == user.id)
        ).scalar_one_or_none()
        if existing is None:
            db.session.add(Membership(user_id=user.id, tenant_id=invitation.tenant_id, role=invitation.role))
        invitation.accepted_at = utcnow()
        audit.record(
            "invitation.accepted",
            target=user.email,
            actor_id=user.id,
            tenant_id=invitation.tenant_id,
            detail={"role": invitation.role},
        )
        db.session.commit()
