"""Local accounts of a node: people who sign in to its web application."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nacl.exceptions
import nacl.pwhash

from protocol.identity import Identity, PublicIdentity
from tsfnode.errors import NodeError
from tsfnode.keyfile import read_key, write_key
from tsfnode.store import Store

ROLES = ("sender", "reader", "coordinator", "admin")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

DICOMWEB_TOKEN = "dicomweb"  # noqa: S105 - the purpose of a token, not a secret


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
    people: Path | None = None,
) -> PublicIdentity | None:
    """Create the account. With ``people`` (the node's ``people/`` folder), a sender,
    reader or coordinator also gets a person key there, which signs what they do
    (requests, claims, reports, evaluations); its id is what a coordinator attests."""
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
    person: Identity | None = None
    if people is not None and role != "admin":
        path = people / f"{username}.key"
        person = read_key(path) if path.exists() else Identity.generate(os.urandom)
    try:
        await store.db.execute(
            "INSERT INTO accounts (username, display_name, role, password_hash, language, "
            "created_ms, person_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                username,
                display_name,
                role,
                hash_password(password),
                language,
                now,
                None if person is None else person.public.key,
            ),
        )
    except Exception as exc:
        if "UNIQUE" in str(exc):
            raise NodeError(f"an account named {username!r} already exists on this node") from None
        raise
    if person is not None and people is not None:
        _keep_person_key(people / f"{username}.key", person)
    await store.db.commit()
    return None if person is None else person.public


def _keep_person_key(path: Path, person: Identity) -> None:
    """Write a person's key sealed with its node's key (a plain one from before is sealed
    in place)."""
    from bootstrap.keys import is_sealed, sealing_key

    path.parent.mkdir(mode=0o700, exist_ok=True)
    if not path.exists() or not is_sealed(path):
        write_key(path, person, seal_with=sealing_key(read_key(path.parent.parent / "node.key")))


async def person_of_account(store: Store, people: Path, username: str) -> Identity:
    """The person key of an account (NodeError if it has none)."""
    cursor = await store.db.execute(
        "SELECT person_key FROM accounts WHERE username = ?", (username,)
    )
    row = await cursor.fetchone()
    if row is None or row[0] is None:
        raise NodeError(f"the account {username!r} has no person key (an admin account?)")
    path = people / f"{username}.key"
    person = read_key(path)
    if person.public.key != bytes(row[0]):
        raise NodeError(f"{path} is not the key of account {username!r}")
    _keep_person_key(path, person)
    return person


TOKEN_PREFIX = "tsf_"  # noqa: S105 - a prefix, not a secret


def _token_hash(token: str) -> bytes:
    from protocol.documents import digest

    return digest(token.encode())


async def create_token(
    store: Store, *, username: str, purpose: str, days: int, now: int, label: str = ""
) -> str:
    """A bearer token for ``username`` (shown once; only its hash is stored)."""
    import base64
    import secrets

    cursor = await store.db.execute("SELECT id FROM accounts WHERE username = ?", (username,))
    row = await cursor.fetchone()
    if row is None:
        raise NodeError(f"no account named {username!r} on this node")
    if not 1 <= days <= 366:
        raise NodeError("a token lasts 1 to 366 days")
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    await store.db.execute(
        "INSERT INTO api_tokens (token_hash, account_id, purpose, created_ms, expires_ms, label)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (_token_hash(token), row[0], purpose, now, now + days * 86_400_000, label),
    )
    await store.db.commit()
    return token


async def check_token(
    store: Store, token: str, *, purpose: str, now: int
) -> tuple[int, str, str] | None:
    """(account id, username, role) of a valid, unexpired, unrevoked token, else None.
    A valid token's last use is recorded (its owner sees it in the list of tokens)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    hashed = _token_hash(token)
    cursor = await store.db.execute(
        "SELECT a.id, a.username, a.role, t.last_used_ms FROM api_tokens t"
        " JOIN accounts a ON a.id = t.account_id"
        " WHERE t.token_hash = ? AND t.purpose = ? AND t.revoked = 0 AND t.expires_ms > ?",
        (hashed, purpose, now),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    if row[3] is None or now - int(row[3]) > 60_000:  # at most one write a minute
        await store.db.execute(
            "UPDATE api_tokens SET last_used_ms = ? WHERE token_hash = ?", (now, hashed)
        )
        await store.db.commit()
    return (int(row[0]), str(row[1]), str(row[2]))
