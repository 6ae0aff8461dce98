"""Personal API tokens: created, listed, revoked and rotated by their owner.

A token is `mon_` and 256 random bits; only its SHA-256 is stored, and the
first characters (the prefix) are kept in clear so a person can tell their
tokens apart. The secret is shown once, when it is made or rotated.
"""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select

from monitorapp.auth import audit
from monitorapp.auth.session import TOKEN_PREFIX
from monitorapp.extensions import db
from monitorapp.models import ApiToken, TokenScope, utcnow

PREFIX_LENGTH = len(TOKEN_PREFIX) + 6


def _new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(user_id: uuid.UUID, name: str, scope: TokenScope) -> tuple[ApiToken, str]:
    """A new token for `user_id` in the current team; returns it and its secret."""
    secret = _new_secret()
    token = ApiToken(
        user_id=user_id,
        name=name.strip(),
        prefix=secret[:PREFIX_LENGTH],
        token_hash=ApiToken.hash_secret(secret),
        scope=scope.value,
    )
    db.session.add(token)
    db.session.flush()
    audit.record("token.created", target=token.prefix, detail={"name": token.name, "scope": scope.value})
    db.session.commit()
    return token, secret


def user_tokens(user_id: uuid.UUID) -> list[ApiToken]:
    """The user's live tokens in the current team, newest first."""
    query = (
        select(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc())
    )
    return list(db.session.execute(query).scalars())


def get_user_token(user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
    """One of the user's own live tokens (someone else's is simply not found)."""
    query = select(ApiToken).where(
        ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)
    )
    return db.session.execute(query).scalar_one_or_none()


def revoke_token(token: ApiToken) -> None:
    token.revoked_at = utcnow()
    audit.record("token.revoked", target=token.prefix, detail={"name": token.name})
    db.session.commit()


def rotate_token(token: ApiToken) -> str:
    """Give `token` a new secret; the old one stops working at once."""
    old_prefix = token.prefix
    secret = _new_secret()
    token.prefix = secret[:PREFIX_LENGTH]
    token.token_hash = ApiToken.hash_secret(secret)
    token.last_used_at = None
    audit.record("token.rotated", target=token.prefix, detail={"name": token.name, "old_prefix": old_prefix})
    db.session.commit()
    return secret
