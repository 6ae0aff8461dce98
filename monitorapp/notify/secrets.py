"""Channel secrets at rest: Fernet encryption and the masked hint shown instead.

The key is `NOTIFY_ENCRYPTION_KEY` when set (any string: it is stretched with
HKDF) and otherwise derived from `SECRET_KEY` with HKDF, with its own `info`
so the derived key is useless for anything else. Rotating the key makes the
stored targets unreadable: channels then fail with a message to enter the
target again.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_INFO = b"monitorapp notification channel secrets v1"


class SecretUnreadable(Exception):
    """The stored target cannot be decrypted with the current key."""


def _fernet() -> Fernet:
    material = current_app.config.get("NOTIFY_ENCRYPTION_KEY") or current_app.config["SECRET_KEY"]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("the channel's target cannot be decrypted (was the key changed?)") from None


def mask(url: str) -> str:
    """A hint that identifies a URL without revealing it: `slack://…/…abcd`."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    tail = url.rstrip("/")[-4:] if len(url) > 12 else ""
    return f"{scheme or '?'}://…/…{tail}"
