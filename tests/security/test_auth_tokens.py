"""Attacks on bearer tokens (issue 21), in process: the local API (``/api/``) and
DICOMweb (``/dicomweb/``) over loopback, each caller a real source address of
127.0.0.0/8, time moved by the node's clock.

- A failed token is logged, with a fingerprint of the token and the address, never the
  token.
- An address that presents bad tokens waits before its next token is looked at, longer
  each time, on both ways in; another address does not.
"""

from __future__ import annotations

import base64
import json

from tests.harness.inprocess import Client, LocalNode, node_log
from tsfnode.auth.accounts import token_hash
from tsfnode.auth.throttle import FREE_FAILURES

ATTACKER, PERSON = "127.0.0.2", "127.0.0.3"
GUESS = "tsf_" + "A" * 43  # the form of a token, nobody's
API, DICOMWEB = "/api/v1/studies", "/dicomweb/studies"


async def call(
    client: Client, path: str, authorization: str = "", lang: str = "en"
) -> tuple[int, str, str]:
    """(status, Retry-After, text) of a GET with this Authorization header."""
    headers = {"Accept-Language": lang}
    if authorization:
        headers["Authorization"] = authorization
    async with client.get(path, headers=headers) as response:
        return response.status, response.headers.get("Retry-After", ""), await response.text()


async def test_a_failed_token_is_logged_with_a_fingerprint_never_the_token(
    node: LocalNode,
) -> None:
    basic = base64.b64encode(f"marie:{GUESS}x".encode()).decode()
    with node_log() as out:
        assert (await call(node.client, API, f"Bearer {GUESS}"))[0] == 401
        assert (await call(node.client, DICOMWEB, f"Bearer {GUESS}y"))[0] == 401
        assert (await call(node.client, DICOMWEB, f"Basic {basic}"))[0] == 401
        assert (await call(node.client, API, f"Bearer {node.accounts['koffi'].token}"))[0] == 200
    logged = out.getvalue()
    refused = [
        line for line in map(json.loads, logged.splitlines()) if line["event"] == "token refused"
    ]
    assert [(r["purpose"], r["fingerprint"], r["address"], r["level"]) for r in refused] == [
        ("send", token_hash(GUESS)[:4].hex(), "127.0.0.1", "warning"),
        ("dicomweb", token_hash(GUESS + "y")[:4].hex(), "127.0.0.1", "warning"),
        ("dicomweb", token_hash(GUESS + "x")[:4].hex(), "127.0.0.1", "warning"),
    ]
    assert "AAAAAAAA" not in logged  # no token, nor a piece of one
    assert basic not in logged


async def test_an_address_trying_tokens_waits_longer_each_time(node: LocalNode) -> None:
    good = node.accounts["koffi"].token
    attacker = await node.client_from(ATTACKER)
    for _ in range(2 * FREE_FAILURES):  # calls without a token are no attempts
        assert (await call(attacker, API))[0] == 401
        assert (await call(attacker, API, "Bearer "))[0] == 401
        assert (await call(attacker, DICOMWEB, "Bearer"))[0] == 401
    for n in range(FREE_FAILURES):
        assert (await call(attacker, API, f"Bearer {GUESS}{n}"))[0] == 401
    # Now even a valid token from this address waits, and is told how long.
    assert await call(attacker, API, f"Bearer {good}") == (
        429,
        "15",
        "Too many attempts: try again in 15 s.",
    )
    status, retry, text = await call(attacker, DICOMWEB, f"Bearer {GUESS}", lang="fr")
    assert (status, retry, text) == (429, "15", "Trop d'essais : réessayez dans 15 s.")
    # Elsewhere, nobody waits.
    person = await node.client_from(PERSON)
    assert (await call(person, API, f"Bearer {good}"))[0] == 200
    assert (await call(person, DICOMWEB, f"Bearer {GUESS}"))[0] == 401
    # Past the wait, one more failure (on either way in) doubles it.
    node.clock.advance(15_000)
    assert (await call(attacker, DICOMWEB, f"Bearer {GUESS}"))[0] == 401
    assert (await call(attacker, API, f"Bearer {good}"))[:2] == (429, "30")
    node.clock.advance(30_000)
    assert (await call(attacker, API, f"Bearer {GUESS}"))[0] == 401
    assert (await call(attacker, API, f"Bearer {good}"))[:2] == (429, "60")
    node.clock.advance(60_000)
    assert (await call(attacker, API, f"Bearer {good}"))[0] == 200
