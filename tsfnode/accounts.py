"""Local accounts of a node: people who sign in to its web application."""

from __future__ import annotations

import re

import nacl.exceptions
import nacl.pwhash

from tsfnode.errors import NodeError
from tsfnode.store import Store

ROLES = ("sender", "reader", "coordinator", "admin")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def hash_password(password: str) -> str:
    """argon2id (libsodium's interactive limits), in the encoded form that carries them."""
    return nacl.pwhash.argon2id.str(password.encode()).decode("ascii")


def check_password(encoded: str, password: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(encoded.encode("ascii"), password.encode()))
    except nacl.exceptions.InvalidkeyError:
        return False


async def create_account(
    store: Store,
    *,
    username: str,
    display_name: str,
    role: str,
    password: str,
    language: str,
    now: int,
) -> None:
    if not _USERNAME.match(username):
        raise NodeError(
            f"username {username!r}: use 2-64 lower-case letters, digits, '.', '_' or '-'"
        )
    if role not in ROLES:
        raise NodeError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise NodeError("password: use at least 10 characters")
    if language not in ("fr", "en"):
        raise NodeError("language: fr or en")
    try:
        await store.db.execute(
            "INSERT INTO accounts (username, display_name, role, password_hash, language, "
            "created_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (username, display_name, role, hash_password(password), language, now),
        )
    except Exception as exc:
        if "UNIQUE" in str(exc):
            raise NodeError(f"an account named {username!r} already exists on this node") from None
        raise
    await store.db.commit()
