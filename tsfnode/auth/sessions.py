"""Sign-in to the web application: sessions, CSRF tokens, throttling, roles; the
bearer tokens of the local API and DICOMweb.

A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure when the page
came over TLS); the node keeps only its BLAKE3 hash, with the session's CSRF token, which
every form carries and every POST must match. Sign-in checks the argon2id hash, in a
worker thread, and a hash nobody knows when the name is no account's (the same work,
the same answer). Failures make the next attempt of the same name from the same address
wait, longer each time (``throttle.py``); failed bearer tokens make their address wait
the same way, and each is logged with a fingerprint of the token, never the token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tsfnode.appkeys import STORE
from tsfnode.auth.accounts import _USERNAME, check_password, check_token, dummy_hash, token_hash
from tsfnode.auth.gate import PRINCIPAL
from tsfnode.auth.throttle import since, wait_left
from tsfnode.clock import request_now
from tsfnode.i18n import N_, choose_language, texts
from tsfnode.logs import log
from tsfnode.store import Store
from tsfnode.store.accounts import AccountStore, TokenOwner, WebSession

SESSION_COOKIE = "tsf_session"
LOGIN_COOKIE = "tsf_login"  # the sign-in form's own CSRF token (double submit)
SESSION_MS = 12 * 3_600_000

# The throttle's key for bearer tokens (per address, whatever the token), and for
# names that cannot be an account's: neither can be a username ('#' is not allowed).
TOKEN_ATTEMPTS = "#token"  # noqa: S105 - a key of the throttle, not a secret
NO_SUCH_NAME = "#invalid"

Session = WebSession  # the signed-in person, as the pages know them
TokenHolder = TokenOwner  # the account behind a bearer token, as the API knows it


class SignInRefused(Exception):
    """A sign-in refused: ``key`` says why (in the catalogues); ``wait_ms`` how long
    before the next attempt may come, when it must wait."""

    def __init__(self, status: int, key: str, wait_ms: int = 0) -> None:
        super().__init__(key)
        self.status, self.key, self.wait_ms = status, key, wait_ms

    @property
    def seconds(self) -> int:
        return -(-self.wait_ms // 1000)

    @property
    def minutes(self) -> int:
        return -(-self.wait_ms // 60_000)


def wait_key(wait_ms: int) -> str:
    """The catalogue key that says how long to wait: in seconds under a minute, else in
    minutes (both texts take ``seconds`` and ``minutes``)."""
    return N_("too_many_attempts_seconds") if wait_ms < 60_000 else N_("too_many_attempts")


def attempts_key(username: str) -> str:
    """What sign-in failures are counted under: the name, or one key for every name
    that cannot be an account's (so that a typed name never grows the table)."""
    return username if _USERNAME.match(username) else NO_SUCH_NAME


async def sign_in(
    store: Store, username: str, password: str, *, source: str, now: int
) -> tuple[str, Session]:
    """A new session for a right password; SignInRefused otherwise, or while this name
    must wait after failures from this address."""
    accounts = AccountStore(store.db)
    key = attempts_key(username)
    wait = wait_left(await accounts.failures(key, source, since(now)), now)
    if wait:
        raise SignInRefused(429, wait_key(wait), wait)
    found = await accounts.credentials(username) if key == username else None
    # An unknown name checks a hash too: the same argon2 work, in a worker thread.
    encoded = found.password_hash if found is not None else await asyncio.to_thread(dummy_hash)
    right = await asyncio.to_thread(check_password, encoded, password)
    if found is None or not right:
        await accounts.add_failure(key, source, now=now, forget_before=since(now))
        raise SignInRefused(401, N_("wrong_credentials"))
    account = found.account
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    await accounts.open_session(
        token_hash=token_hash(token),
        account_id=account.id,
        csrf=csrf,
        now=now,
        expires_ms=now + SESSION_MS,
        attempts=(key, source),
    )
    session = Session(
        account.id, account.username, account.display_name, account.role, account.language, csrf
    )
    return token, session


async def session_of(request: web.Request) -> Session | None:
    """The request's web session, if signed in (the gate's answer when it asked first)."""
    found = request.get(PRINCIPAL)
    if isinstance(found, Session):
        return found
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    return await AccountStore(request.config_dict[STORE].db).session(
        token_hash(token), request_now(request)
    )


async def sign_out(request: web.Request) -> None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await AccountStore(request.config_dict[STORE].db).close_session(token_hash(token))


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
        max_age=SESSION_MS // 1000,
    )


async def signed_in(request: web.Request) -> Session:
    """The web gate's test: the signed-in person, else to the sign-in page (and back)."""
    session = await session_of(request)
    if session is None:
        target = quote(request.path_qs, safe="/")
        raise web.HTTPSeeOther(f"/web/login?next={target}")
    return session


async def bearer_holder(request: web.Request, token: str, *, purpose: str) -> TokenHolder | None:
    """The account behind a bearer token presented for ``purpose``, or None (logged, with
    a fingerprint of the token and the address, and counted against the address; an
    empty token is no attempt). While the address must wait after failures, 429 without
    looking at the token."""
    if not token:
        return None
    store = request.config_dict[STORE]
    accounts = AccountStore(store.db)
    source = request.remote or ""
    now = request_now(request)
    wait = wait_left(await accounts.failures(TOKEN_ATTEMPTS, source, since(now)), now)
    if wait:
        seconds = -(-wait // 1000)
        words = texts(choose_language(request))
        raise web.HTTPTooManyRequests(
            text=words(wait_key(wait), seconds=seconds, minutes=-(-wait // 60_000)),
            headers={"Retry-After": str(seconds)},
        )
    found = await check_token(store, token, purpose=purpose, now=now)
    if found is None:
        await accounts.add_failure(TOKEN_ATTEMPTS, source, now=now, forget_before=since(now))
        log(
            "token refused",
            level=logging.WARNING,
            purpose=purpose,
            fingerprint=token_hash(token)[:4].hex(),
            address=source,
        )
    return found


async def token_holder(request: web.Request) -> TokenHolder:
    """The local API's gate: a valid bearer token of an account (``tsfnode account
    token``), else 401 (429 while the address must wait after failed tokens)."""
    header = request.headers.get("Authorization", "")
    found = None
    if header:
        scheme, _, rest = header.strip().partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else header.strip()
        found = await bearer_holder(request, token, purpose="send")
    if found is None:
        raise web.HTTPUnauthorized(
            text="401: a valid token is needed (tsfnode account token)"
            " / un jeton valide est nécessaire",
            headers={"WWW-Authenticate": 'Bearer realm="tsfnode"'},
        )
    return found


async def require(request: web.Request, *roles: str) -> Session:
    """The signed-in person, if their role is one of ``roles``: else to the sign-in page
    (signed out) or 403 (signed in with another role)."""
    session = await signed_in(request)
    if roles and session.role not in roles:
        raise web.HTTPForbidden(text="403: this page is not for your role / pas pour votre rôle")
    return session


async def posted_form(request: web.Request, *roles: str) -> tuple[Session, dict[str, Any]]:
    """The signed-in person (``require``) and the form they posted, if it carries their
    session's CSRF token (``check_csrf``)."""
    session = await require(request, *roles)
    return session, await check_csrf(request, session)


async def check_csrf(request: web.Request, session: Session) -> dict[str, Any]:
    """The posted form, if it carries the session's CSRF token (else 403)."""
    form = dict(await request.post())
    if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
        raise web.HTTPForbidden(text="403: the form has expired; reload the page")
    return form


HOMES = {"admin": "/web/admin", "coordinator": "/web/coordinator"}


def safe_next(value: str) -> str:
    """Only a page of this web application (no open redirect); "" for none."""
    if value.startswith("/web/") and "//" not in value and "\\" not in value:
        return value
    return ""


def home_of(role: str) -> str:
    """Where a person lands after signing in, when no page asked for it."""
    return HOMES.get(role, "/web/cases")
