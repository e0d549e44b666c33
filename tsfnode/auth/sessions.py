"""Sign-in to the web application: sessions, CSRF tokens, throttling, roles.

A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure when the page
came over TLS); the node keeps only its BLAKE3 hash, with the session's CSRF token, which
every form carries and every POST must match. Sign-in checks the argon2id hash; after 5
failures for a username, or 20 from one address, within 15 minutes, sign-in is refused
for the rest of that time (the same answer whether the name exists or not).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from protocol.documents import digest
from tsfnode.appkeys import STORE
from tsfnode.auth.accounts import check_password, check_token
from tsfnode.auth.gate import PRINCIPAL
from tsfnode.clock import request_now
from tsfnode.i18n import N_
from tsfnode.store import Store

SESSION_COOKIE = "tsf_session"
LOGIN_COOKIE = "tsf_login"  # the sign-in form's own CSRF token (double submit)
SESSION_MS = 12 * 3_600_000
WINDOW_MS = 15 * 60_000
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_SOURCE = 20


@dataclass(frozen=True)
class Session:
    account_id: int
    username: str
    display_name: str
    role: str
    language: str
    csrf: str


class SignInRefused(Exception):
    def __init__(self, status: int, key: str, minutes: int = 0) -> None:
        super().__init__(key)
        self.status, self.key, self.minutes = status, key, minutes


def _hash(token: str) -> bytes:
    return digest(token.encode())


async def sign_in(
    store: Store, username: str, password: str, *, source: str, now: int
) -> tuple[str, Session]:
    """A new session for a right password; SignInRefused otherwise (or when throttled)."""
    db = store.db
    since = now - WINDOW_MS
    cursor = await db.execute(
        "SELECT COUNT(*), MIN(at_ms) FROM login_failures WHERE username = ? AND at_ms > ?",
        (username, since),
    )
    by_name, first_by_name = await cursor.fetchone() or (0, None)
    cursor = await db.execute(
        "SELECT COUNT(*), MIN(at_ms) FROM login_failures WHERE source = ? AND at_ms > ?",
        (source, since),
    )
    by_source, first_by_source = await cursor.fetchone() or (0, None)
    if by_name >= MAX_FAILURES_PER_NAME or by_source >= MAX_FAILURES_PER_SOURCE:
        first = min(t for t in (first_by_name, first_by_source) if t is not None)
        minutes = max(1, -(-(first + WINDOW_MS - now) // 60_000))
        raise SignInRefused(429, N_("too_many_attempts"), minutes)
    cursor = await db.execute(
        "SELECT id, display_name, role, password_hash, language FROM accounts WHERE username = ?",
        (username,),
    )
    row = await cursor.fetchone()
    if row is None or not check_password(str(row[3]), password):
        await db.execute(
            "INSERT INTO login_failures (username, source, at_ms) VALUES (?, ?, ?)",
            (username, source, now),
        )
        await db.execute("DELETE FROM login_failures WHERE at_ms < ?", (now - WINDOW_MS,))
        await db.commit()
        raise SignInRefused(401, N_("wrong_credentials"))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    await db.execute(
        "INSERT INTO web_sessions (token_hash, account_id, csrf, created_ms, expires_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (_hash(token), row[0], csrf, now, now + SESSION_MS),
    )
    await db.execute("DELETE FROM web_sessions WHERE expires_ms < ?", (now,))
    await db.commit()
    return token, Session(int(row[0]), username, str(row[1]), str(row[2]), str(row[4]), csrf)


async def session_of(request: web.Request) -> Session | None:
    """The request's web session, if signed in (the gate's answer when it asked first)."""
    found = request.get(PRINCIPAL)
    if isinstance(found, Session):
        return found
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    cursor = await request.config_dict[STORE].db.execute(
        "SELECT a.id, a.username, a.display_name, a.role, a.language, s.csrf"
        " FROM web_sessions s JOIN accounts a ON a.id = s.account_id"
        " WHERE s.token_hash = ? AND s.expires_ms > ?",
        (_hash(token), request_now(request)),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return Session(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]))


async def sign_out(request: web.Request) -> None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        db = request.config_dict[STORE].db
        await db.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_hash(token),))
        await db.commit()


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


@dataclass(frozen=True)
class TokenHolder:
    """The account behind a bearer token of the local API."""

    account_id: int
    username: str
    role: str


async def token_holder(request: web.Request) -> TokenHolder:
    """The local API's gate: a valid bearer token of an account (``tsfnode account
    token``), else 401."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    found = await check_token(
        request.config_dict[STORE], token, purpose="send", now=request_now(request)
    )
    if found is None:
        raise web.HTTPUnauthorized(
            text="401: a valid token is needed (tsfnode account token)"
            " / un jeton valide est nécessaire",
            headers={"WWW-Authenticate": 'Bearer realm="tsfnode"'},
        )
    return TokenHolder(*found)


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
