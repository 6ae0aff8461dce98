"""Teams: invitations, roles, members, several teams per person, renaming and deleting."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import ApiToken, AuditEvent, Invitation, Membership, Role, Tenant, User
from monitorapp.tenancy import system_scope
from tests.auth.conftest import NEW_PASSWORD, link_in, mail_to, post_form
from tests.auth.test_auth_login import actions, log_in
from tests.conftest import add_member, login, make_token


def invite(client, email, role="member"):
    return post_form(client, "/team/invitations", {"email": email, "role": role}, page="/team")


def membership_of(email, team_id) -> Membership | None:
    with system_scope():
        return db.session.execute(
            select(Membership)
            .join(User, Membership.user_id == User.id)
            .where(User.email == email, Membership.tenant_id == team_id)
        ).scalar_one_or_none()


def test_a_new_person_signs_up_through_an_invitation_into_the_team(client, app, alice, outbox):
    login(client, alice)
    assert invite(client, "dora@example.com", "viewer").status_code == 303
    message = mail_to(outbox, "dora@example.com", "invited you to Team A")
    path = link_in(message, "/invitations/")
    dora = app.test_client()
    page = dora.get(path).get_data(as_text=True)
    assert "Join Team A" in page and 'id="join-form"' in page
    response = post_form(dora, path + "/join", {"password": NEW_PASSWORD}, page=path)
    assert response.status_code == 303
    membership = membership_of("dora@example.com", alice.team_id)
    assert membership.role == "viewer"
    with system_scope():
        user = db.session.get(User, membership.user_id)
        assert user.is_verified  # the link proved the address
        assert db.session.execute(select(Membership).where(Membership.user_id == user.id)).scalars().all() == [
            membership
        ]  # no team of her own
    assert dora.get("/team").status_code == 200
    assert dora.get(path).status_code == 400  # the link is used up
    assert {"invitation.sent", "invitation.accepted"} <= set(actions())


def test_an_existing_user_accepts_an_invitation_and_switches_teams(client, app, alice, charlie, outbox):
    login(client, alice)
    invite(client, charlie.email)
    path = link_in(mail_to(outbox, charlie.email, "invited"), "/invitations/")
    other = app.test_client()
    assert "Log in to accept" in other.get(path).get_data(as_text=True)
    log_in(other, charlie.email, next_url=path)
    response = post_form(other, path, {}, page=path)
    assert response.status_code == 303
    assert membership_of(charlie.email, alice.team_id).role == "member"
    # Accepting moves charlie into team A; the switcher offers team B.
    nav = other.get("/team").get_data(as_text=True)
    assert "Team A" in nav and "Switch to Team B" in nav
    post_form(other, "/teams/switch", {"team_id": str(charlie.team_id)}, page="/team")
    assert "<h1>Team Team B</h1>" in other.get("/team").get_data(as_text=True)


def test_an_invitation_cannot_be_accepted_by_another_account(client, app, alice, bob, charlie, outbox):
    login(client, alice)
    invite(client, "dora@example.com")
    path = link_in(mail_to(outbox, "dora@example.com", "invited"), "/invitations/")
    other = app.test_client()
    login(other, charlie)
    assert post_form(other, path, {}, page=path).status_code == 403
    assert membership_of(charlie.email, alice.team_id) is None


def test_an_expired_or_withdrawn_invitation_is_refused(client, app, alice, outbox):
    login(client, alice)
    invite(client, "dora@example.com")
    invite(client, "erin@example.com")
    dora_path = link_in(mail_to(outbox, "dora@example.com", "invited"), "/invitations/")
    erin_path = link_in(mail_to(outbox, "erin@example.com", "invited"), "/invitations/")
    with system_scope():
        erin = db.session.execute(select(Invitation).where(Invitation.email == "erin@example.com")).scalar_one()
        dora = db.session.execute(select(Invitation).where(Invitation.email == "dora@example.com")).scalar_one()
        dora.expires_at = dora.expires_at - timedelta(days=30)
        db.session.commit()
    post_form(client, f"/team/invitations/{erin.id}/revoke", {}, page="/team")
    guest = app.test_client()
    assert guest.get(dora_path).status_code == 400
    assert guest.get(erin_path).status_code == 400


def test_it_refuses_to_invite_a_member(client, alice, bob):
    login(client, alice)
    response = invite(client, bob.email)
    assert response.status_code == 422
    assert "already in this team" in response.get_data(as_text=True)


def test_an_owner_changes_a_role(client, alice, bob):
    login(client, alice)
    membership = membership_of(bob.email, alice.team_id)
    response = post_form(client, f"/team/members/{membership.id}/role", {"role": "viewer"}, page="/team")
    assert response.status_code == 303
    db.session.expire_all()
    assert membership_of(bob.email, alice.team_id).role == "viewer"
    assert "member.role_changed" in actions()


def test_the_last_owner_cannot_step_down_or_be_removed(client, alice):
    login(client, alice)
    membership = membership_of(alice.email, alice.team_id)
    assert post_form(client, f"/team/members/{membership.id}/role", {"role": "member"}, page="/team").status_code == 422
    assert post_form(client, f"/team/members/{membership.id}/remove", {}, page="/team").status_code == 422
    db.session.expire_all()
    assert membership_of(alice.email, alice.team_id).role == "owner"


def test_an_owner_can_step_down_when_another_owner_remains(client, alice, bob):
    login(client, alice)
    bobs = membership_of(bob.email, alice.team_id)
    post_form(client, f"/team/members/{bobs.id}/role", {"role": "owner"}, page="/team")
    mine = membership_of(alice.email, alice.team_id)
    assert post_form(client, f"/team/members/{mine.id}/role", {"role": "member"}, page="/team").status_code == 303


def test_a_removed_member_loses_the_team_and_their_tokens(client, app, alice, bob):
    secret = make_token(bob)
    bob_client = app.test_client()
    login(bob_client, bob)
    login(client, alice)
    membership = membership_of(bob.email, alice.team_id)
    assert post_form(client, f"/team/members/{membership.id}/remove", {}, page="/team").status_code == 303
    assert membership_of(bob.email, alice.team_id) is None
    assert client.get("/api/endpoints/", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    with system_scope():
        assert db.session.execute(select(ApiToken)).first() is None
    # Bob has no team left: he is asked to make one.
    assert bob_client.get("/team").headers["Location"] == "/teams/new"
    assert "member.removed" in actions()


def test_an_owner_renames_the_team(client, alice):
    login(client, alice)
    assert post_form(client, "/team/rename", {"name": "Renamed"}, page="/team").status_code == 303
    assert db.session.execute(select(Tenant.name).where(Tenant.id == alice.team_id)).scalar_one() == "Renamed"


def test_an_owner_deletes_the_team_after_typing_its_name(client, alice, bob, charlie):
    make_token(bob)
    login(client, alice)
    assert post_form(client, "/team/delete", {"confirm": "Team"}, page="/team").status_code == 422
    assert post_form(client, "/team/delete", {"confirm": "Team A"}, page="/team").status_code == 303
    with system_scope():
        assert db.session.execute(select(Tenant.name)).scalars().all() == ["Team B"]
        assert db.session.execute(select(Membership.tenant_id)).scalars().all() == [charlie.team_id]
        assert db.session.execute(select(ApiToken)).first() is None
        assert db.session.execute(select(AuditEvent).where(AuditEvent.tenant_id == alice.team_id)).first() is None
    assert client.get("/dashboard").headers["Location"] == "/teams/new"


def test_a_person_without_a_team_creates_one(client, alice):
    login(client, alice)
    post_form(client, "/team/delete", {"confirm": "Team A"}, page="/team")
    response = post_form(client, "/teams/new", {"name": "Fresh start"}, page="/teams/new")
    assert response.status_code == 303
    assert "<h1>Team Fresh start</h1>" in client.get("/team").get_data(as_text=True)


def test_switching_to_a_team_i_am_not_in_is_not_found(client, alice, charlie):
    login(client, alice)
    response = post_form(client, "/teams/switch", {"team_id": str(charlie.team_id)}, page="/team")
    assert response.status_code == 404
    assert "<h1>Team Team A</h1>" in client.get("/team").get_data(as_text=True)


def test_members_and_viewers_see_the_team_but_no_controls(client, bob, victor):
    for actor in (bob, victor):
        login(client, actor)
        page = client.get("/team").get_data(as_text=True)
        assert "bob@example.com" in page
        assert 'id="invite-form"' not in page and 'id="delete-team-form"' not in page


def test_a_second_team_shows_in_the_switcher(client, alice, team_b):
    with system_scope():
        add_member(db.session.get(User, alice.user_id), team_b, Role.VIEWER)
    login(client, alice)
    assert "Switch to Team B" in client.get("/account").get_data(as_text=True)
