"""Operators' passwords: Argon2id hashes (argon2-cffi), what a password must be, verifying.

The parameters are RFC 9106's low-memory profile (64 MiB, 3 passes, 4 lanes), above OWASP's
minimum for Argon2id (19 MiB, 2 passes, 1 lane). A hash carries its parameters, so raising
them later rehashes each password at its next sign-in.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lib.secret import Secret

HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
MIN_LENGTH = 12  # characters; any character counts, spaces too
MAX_LENGTH = 1024  # bounds the work one sign-in can ask of the server
PASSWORD_RULE = f"A password has {MIN_LENGTH} to {MAX_LENGTH} characters (spaces count)."


@cache
def _unknown_operator_hash() -> str:
    """Return a hash to verify against when the name tried has none: as slow as a real one."""
    return HASHER.hash("no operator has this name")


def password_problem(password: Secret) -> str | None:
    """Return what is wrong with a new password, or None when it may be used."""
    return None if MIN_LENGTH <= len(password) <= MAX_LENGTH else PASSWORD_RULE


def hash_password(password: Secret) -> str:
    """Return the Argon2id hash of a password (salted; it holds its own parameters)."""
    return HASHER.hash(password.reveal())


def verify_password(stored: str | None, password: Secret) -> bool:
    """Return whether the password matches the stored hash (None: no operator, always False)."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return (
            HASHER.verify(stored or _unknown_operator_hash(), password.reveal())
            and stored is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Return whether a stored hash was made with weaker parameters than HASHER's."""
    return HASHER.check_needs_rehash(stored)
