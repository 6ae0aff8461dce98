"""Password rules: long enough, not too long, not common, not the email."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

MIN_LENGTH = 10
MAX_LENGTH = 128
COMMON_PASSWORDS = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list (see data/README.md), lowercased, read once per process."""
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why `password` is refused, in words for the form, or None if it is fine."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if password.strip().lower() in common_passwords():
        return "This password is too common; it is among the first ones attackers try."
    if email and password.strip().lower() == email.strip().lower():
        return "The password must not be your email address."
    return None
