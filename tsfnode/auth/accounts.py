"""Local accounts of a node: people who sign in to its web application."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import secrets
from pathlib import Path

import nacl.exceptions
import nacl.pwhash

from protocol.identity import Identity, PublicIdentity
from tsfnode.errors import NodeError
from tsfnode.i18n import N_
from tsfnode.keyfile import read_key, write_key
from tsfnode.store import Store
from tsfnode.store.accounts import AccountStore, NewAccount, TokenOwner, UsernameTaken

ROLES = ("sender", "reader", "coordinator", "admin")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

DICOMWEB_TOKEN = "dicomweb"  # noqa: S105 - the purpose of a token, not a secret


def hash_password(password: str) -> str:
    """argon2id (libsodium's interactive limits), in the encoded form that carries them."""
    return nacl.pwhash.argon2id.str(password.encode()).decode("ascii")


def check_password(encoded: str, password: str) -> bool:
    """Whether ``password`` matches the argon2id hash ``encoded``: slow on purpose (about
    0.1 s of work), so call it off the event loop (``asyncio.to_thread``)."""
    try:
        return bool(nacl.pwhash.verify(encoded.encode("ascii"), password.encode()))
    except nacl.exceptions.InvalidkeyError:
        return False


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password nobody knows, made with the same limits as every
    account's: checked when a sign-in names no account, so that an unknown name costs
    the same work, and the same time, as a known one."""
    return hash_password(secrets.token_urlsafe(24))


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
    accounts = AccountStore(store.db)
    if await accounts.account(username) is not None:
        raise _taken(username)
    person: Identity | None = None
    if people is not None and role != "admin":
        person = person_key_for(people, username)
    try:
        password_hash = await asyncio.to_thread(hash_password, password)
        await accounts.add_account(
            NewAccount(username, display_name, role, password_hash, language),
            now=now,
            person_key=None if person is None else person.public.key,
        )
    except UsernameTaken:
        raise _taken(username) from None
    return None if person is None else person.public


def _taken(username: str) -> NodeError:
    return NodeError(f"an account named {username!r} already exists on this node")


def person_key_for(people: Path, username: str) -> Identity:
    """The person key kept for ``username`` in ``people/`` (made now if there is none),
    sealed with the node's key."""
    path = people / f"{username}.key"
    person = read_key(path) if path.exists() else Identity.generate(os.urandom)
    _keep_person_key(path, person)
    return person


def _keep_person_key(path: Path, person: Identity) -> None:
    """Write a person's key sealed with its node's key (a plain one from before is sealed
    in place)."""
    from bootstrap.keys import is_sealed, sealing_key

    path.parent.mkdir(mode=0o700, exist_ok=True)
    if not path.exists() or not is_sealed(path):
        write_key(path, person, seal_with=sealing_key(read_key(path.parent.parent / "node.key")))


async def person_of_account(store: Store, people: Path, username: str) -> Identity:
    """The person key of an account (NodeError if it has none)."""
    account = await AccountStore(store.db).account(username)
    if account is None or account.person_key is None:
        raise NodeError(f"the account {username!r} has no person key (an admin account?)")
    path = people / f"{username}.key"
    person = read_key(path)
    if person.public.key != account.person_key:
        raise NodeError(f"{path} is not the key of account {username!r}")
    _keep_person_key(path, person)
    return person


TOKEN_PREFIX = "tsf_"  # noqa: S105 - a prefix, not a secret


def token_hash(token: str) -> bytes:
    """What is kept of a token: its BLAKE3 hash (a prefix in hex is its fingerprint in
    the log)."""
    from protocol.documents import digest

    return digest(token.encode())


async def create_token(
    store: Store, *, username: str, purpose: str, days: int, now: int, label: str = ""
) -> str:
    """A bearer token for ``username`` (shown once; only its hash is stored)."""
    import base64
    import secrets

    accounts = AccountStore(store.db)
    account = await accounts.account(username)
    if account is None:
        raise NodeError(f"no account named {username!r} on this node")
    if not 1 <= days <= 366:
        raise NodeError("a token lasts 1 to 366 days")
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    await accounts.add_token(
        token_hash=token_hash(token),
        account_id=account.id,
        purpose=purpose,
        now=now,
        expires_ms=now + days * 86_400_000,
        label=label,
    )
    return token


async def check_token(store: Store, token: str, *, purpose: str, now: int) -> TokenOwner | None:
    """The owner of a valid, unexpired, unrevoked token, else None. A valid token's
    last use is recorded (its owner sees it in the list of tokens)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return await AccountStore(store.db).use_token(token_hash(token), purpose=purpose, now=now)


def check_binding(ae_title: str, host: str, port: str) -> str:
    """The problem with a workstation to bind ("" if none): an AE title of 1 to 16 ASCII
    characters without backslash, a host name or address, a port (as export.py checks a
    destination)."""
    from tsfnode.images.export import check_destination

    return check_destination("workstation", ae_title, host, port, "TSFNODE")


async def bind_workstation(
    store: Store, *, account_id: int, ae_title: str, host: str, port: str, now: int
) -> str:
    """Bind a workstation (its AE title, the host and port where it takes C-MOVEs) to
    an account, for the Query/Retrieve SCP (dicomweb/qr.py); the AE title as bound.
    NodeError saying what to fix: a bad value, an account with no person key (an
    admin reads no case), an AE title bound to another account."""
    from tsfnode.store.bindings import AeTitleTaken, BindingStore

    problem = check_binding(ae_title, host, port)
    if problem:
        raise NodeError(problem, key=N_("binding_invalid"), values={"problem": problem})
    account = await AccountStore(store.db).account_by_id(account_id)
    if account is None or account.person_key is None:
        raise NodeError("only a reader's, coordinator's or sender's account binds a workstation")
    title = ae_title.strip()
    try:
        await BindingStore(store.db).bind(
            account_id, ae_title=title, host=host.strip(), port=int(port), now=now
        )
    except AeTitleTaken:
        raise NodeError(
            f"AE title {title} is bound to another account already: choose another",
            key=N_("binding_taken"),
            values={"ae": title},
        ) from None
    return title
