"""Echo requests (SPEC.md 7.3): signed by the requester, for one asked node, now."""

from __future__ import annotations

import pytest

from protocol.echo import decode_echo_request, encode_echo_request
from protocol.errors import BadSignatureError, ExpiredError, MalformedError
from tests.protocol.helpers import identity

NOW = 1_800_000_000_000


def test_an_echo_request_names_its_signer_its_address_and_one_asked_node() -> None:
    requester, asked, other = (identity(name) for name in ("parakou", "erasme", "dakar"))
    request = encode_echo_request(requester, asked.public.key, "http://192.0.2.7:8443", NOW)
    seen = decode_echo_request(request, asked=asked.public.key, now=NOW + 1000)
    assert seen.node.key == requester.public.key
    assert seen.address == "http://192.0.2.7:8443"
    with pytest.raises(MalformedError, match="another node"):
        decode_echo_request(request, asked=other.public.key, now=NOW)
    with pytest.raises(ExpiredError):
        decode_echo_request(request, asked=asked.public.key, now=NOW + 6 * 60_000)
    # Another address under the same signature: refused before anything is read.
    moved = request[: -64 - 4] + b"8444" + request[-64:]
    with pytest.raises(BadSignatureError):
        decode_echo_request(moved, asked=asked.public.key, now=NOW)
    with pytest.raises(MalformedError):
        decode_echo_request(request[:100], asked=asked.public.key, now=NOW)
