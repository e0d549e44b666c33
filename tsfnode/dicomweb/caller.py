"""Who calls DICOMweb, and how they are answered: the gate (``caller``: a DICOMweb token,
Bearer or Basic, else the web session), the caller's language, refusals in it, and the
address the caller reached. What every DICOMweb route needs (service.py's searches and
retrievals, stow.py's STOW-RS), so that neither route module imports the other.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from aiohttp import web

from tsfnode.appkeys import STORE
from tsfnode.auth.accounts import DICOMWEB_TOKEN
from tsfnode.auth.gate import PRINCIPAL
from tsfnode.auth.sessions import bearer_holder, session_of
from tsfnode.i18n import LANGUAGES, N_, choose_language, texts
from tsfnode.info import dicomweb_base_url
from tsfnode.store.accounts import AccountStore

CHALLENGE = 'Bearer realm="tsfnode DICOMweb", Basic realm="tsfnode DICOMweb"'


@dataclass(frozen=True)
class Person:
    account_id: int
    key: bytes
    via: str = "session"  # how the person was known: "token" or "session"


def _unauthorized(reason: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text=f"401: {reason}", headers={"WWW-Authenticate": CHALLENGE})


def language_of(request: web.Request) -> str | None:
    """The language a caller asked for (Accept-Language, ?lang=, the web application's
    cookie); None for a viewer program that asks for none."""
    if request.headers.get("Accept-Language") or request.query.get("lang") in LANGUAGES:
        return choose_language(request)
    return choose_language(request) if request.cookies.get("lang") in LANGUAGES else None


def refused(
    request: web.Request, kind: type[web.HTTPException], key: str, **values: object
) -> web.HTTPException:
    """A refusal whose text is the catalogue's ``key``, after its status (``404: ...``),
    in the caller's language (English for a program that asks for none)."""
    text = texts(language_of(request) or "en")(key, **values)
    return kind(text=f"{kind.status_code}: {text}")


def refused_as_is(
    request: web.Request, kind: type[web.HTTPException], reason: object
) -> web.HTTPException:
    """A refusal in the words of the parser that made it (English), after a lead-in in
    the caller's language that says so when they asked for one."""
    lang = language_of(request)
    text = texts(lang)(N_("refused"), detail=reason) if lang else str(reason)
    return kind(text=f"{kind.status_code}: {text}")


def _token_of(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(credentials.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("Basic credentials are not base64 of user:token") from None
        return password
    raise _unauthorized(f"{scheme}: use Bearer (or Basic) with a DICOMweb token")


async def person_of(request: web.Request) -> Person:
    """The person calling (the gate asked first: ``caller``)."""
    found = request.get(PRINCIPAL)
    return found if isinstance(found, Person) else await caller(request)


async def caller(request: web.Request) -> Person:
    """DICOMweb's gate: the person calling, by token, else by web session; 401 or 403
    otherwise."""
    header = request.headers.get("Authorization", "")
    if header:
        token = _token_of(header)
        found = await bearer_holder(request, token, purpose=DICOMWEB_TOKEN)
        if found is None:
            raise _unauthorized("this token is unknown, expired or revoked")
        account_id, via = found.account_id, "token"
    else:
        session = await session_of(request)
        if session is None:
            raise _unauthorized("sign in to the web application, or send a DICOMweb token")
        account_id, via = session.account_id, "session"
    account = await AccountStore(request.config_dict[STORE].db).account_by_id(account_id)
    if account is None or account.person_key is None:
        raise refused(request, web.HTTPForbidden, N_("dicomweb_not_a_member"))
    return Person(account_id, account.person_key, via)


def url_of(request: web.Request, *parts: str) -> str:
    """The DICOMweb address the caller reached, followed by ``parts``."""
    return "/".join((dicomweb_base_url(request), *parts))
