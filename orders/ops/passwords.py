"""Operator passwords: scrypt (``hashlib.scrypt``), a random salt each, compared in
constant time. Stored as ``scrypt$n$r$p$salt$hash`` (base64), so the cost can be
raised later without breaking stored hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

N, R, P = 2**15, 8, 1  # about 32 MiB and tens of milliseconds per hash
KEY_BYTES = 32
SALT_BYTES = 16
MAX_MEMORY = 64 * 1024 * 1024
MAX_PASSWORD_CHARS = 1024


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAX_MEMORY, dklen=KEY_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password[:MAX_PASSWORD_CHARS], salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored``; False for a malformed hash too."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        cost = (int(n), int(r), int(p))
        actual = _derive(password[:MAX_PASSWORD_CHARS], base64.b64decode(salt), *cost)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def spend_verify_time(password: str) -> None:
    """Cost the same as a real check, for an unknown account (no timing oracle)."""
    verify_password(password, _dummy_hash())
