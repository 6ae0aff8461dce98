"""Personal API tokens: shown once, hashed, scoped, revoked and rotated at once."""

from __future__ import annotations

import re

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import ApiToken
from monitorapp.tenancy import system_scope
from tests.auth.conftest import post_form
from tests.auth.test_auth_login import actions
from tests.conftest import login, make_token


def create(client, name="ci", scope="read"):
    return post_form(client, "/account/tokens", {"name": name, "scope": scope}, page="/account")


def secret_in(response) -> str:
    match = re.search(r'<code class="token-secret">(mon_[A-Za-z0-9_-]+)</code>', response.get_data(as_text=True))
    assert match, "the new token is not shown"
    return match.group(1)


def api_get(client, secret):
    return client.get("/api/endpoints/", headers={"Authorization": f"Bearer {secret}"})


def all_tokens() -> list[ApiToken]:
    with system_scope():
        return list(db.session.execute(select(ApiToken)).scalars())


def test_it_shows_the_secret_once_and_stores_only_its_hash(client, alice):
    login(client, alice)
    response = create(client, scope="write")
    assert response.status_code == 200
    secret = secret_in(response)
    (token,) = all_tokens()
    assert token.token_hash == ApiToken.hash_secret(secret)
    assert secret not in token.token_hash
    assert token.prefix == secret[:10]
    assert token.scope == "write"
    page = client.get("/account").get_data(as_text=True)
    assert secret not in page
    assert token.prefix in page
    assert api_get(client, secret).status_code == 200
    assert "token.created" in actions()


def test_a_revoked_token_is_refused_at_once(client, alice):
    login(client, alice)
    secret = secret_in(create(client))
    (token,) = all_tokens()
    assert api_get(client, secret).status_code == 200
    response = post_form(client, f"/account/tokens/{token.id}/revoke", {}, page="/account")
    assert response.status_code == 303
    assert api_get(client, secret).status_code == 401
    assert "token.revoked" in actions()


def test_a_rotated_token_has_a_new_secret_and_the_old_one_dies(client, alice):
    login(client, alice)
    old = secret_in(create(client))
    (token,) = all_tokens()
    new = secret_in(post_form(client, f"/account/tokens/{token.id}/rotate", {}, page="/account"))
    assert new != old
    assert api_get(client, old).status_code == 401
    assert api_get(client, new).status_code == 200
    assert "token.rotated" in actions()


def test_a_viewer_can_only_make_read_tokens(client, victor):
    login(client, victor)
    page = client.get("/account").get_data(as_text=True)
    assert 'value="write"' not in page
    assert create(client, scope="write").status_code == 403
    assert create(client, scope="read").status_code == 200
    assert [t.scope for t in all_tokens()] == ["read"]


def test_a_read_token_cannot_write(client, alice):
    login(client, alice)
    secret = secret_in(create(client, scope="read"))
    response = client.post(
        "/api/endpoints/",
        json={"name": "x", "url": "https://example.com/"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 403


def test_nobody_can_revoke_or_rotate_someone_elses_token(client, alice, bob, charlie):
    bobs = make_token(bob)
    charlies = make_token(charlie)
    login(client, alice)
    for token in all_tokens():
        for action in ("revoke", "rotate"):
            assert post_form(client, f"/account/tokens/{token.id}/{action}", {}, page="/account").status_code == 404
    assert api_get(client, bobs).status_code == 200
    assert api_get(client, charlies).status_code == 200


def test_a_demoted_members_tokens_become_read_only(client, alice, bob):
    secret = make_token(bob)
    (token,) = all_tokens()
    login(client, alice)
    with system_scope():
        from monitorapp.models import Membership

        membership = db.session.execute(select(Membership).where(Membership.user_id == bob.user_id)).scalar_one()
    post_form(client, f"/team/members/{membership.id}/role", {"role": "viewer"}, page="/team")
    db.session.expire_all()
    assert [t.scope for t in all_tokens()] == ["read"]
    assert api_get(client, secret).status_code == 200


def test_the_token_list_shows_only_my_tokens_in_this_team(client, alice, bob):
    make_token(bob, name="bobs-token")
    login(client, alice)
    create(client, name="alices-token")
    page = client.get("/account").get_data(as_text=True)
    assert "alices-token" in page
    assert "bobs-token" not in page
    assert token_count(page) == 1


def token_count(page: str) -> int:
    return len(re.findall(r'<tr id="token-', page))
