"""Echo requests (SPEC.md 7.3): a node asks a peer to connect back to one of the
addresses the node publishes in its directory record, and to say what it saw. Sans-IO:
the signed request's bytes, and their check; the peer's connecting is the node's."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import ExpiredError, LocalProtocolError, MalformedError
from protocol.identity import Identity, PublicIdentity

ECHO_TAG = "tsf/1/echo"
ECHO_SKEW_MS = 5 * 60_000
MAX_ECHO_ADDRESS = 255  # bytes of UTF-8
# What the asked node saw, in its answer: a node answered /peer/v1/hello with the
# requester's id; something else answered; the connection was refused; nothing answered.
ECHO_RESULTS = ("reachable", "other", "refused", "timeout")


@dataclass(frozen=True, kw_only=True)
class EchoRequest:
    node: PublicIdentity  # the requester, who signed
    address: str  # where it asks to be connected back to
    made_ms: int


def encode_echo_request(identity: Identity, asked: bytes, address: str, now: int) -> bytes:
    """``requester id (32) || asked node id (32) || now u64 ms (8) || address (UTF-8)``,
    then the signature (64) over all of it with tag ECHO_TAG."""
    raw = address.encode("utf-8")
    if len(asked) != 32 or not 0 < len(raw) <= MAX_ECHO_ADDRESS:
        raise LocalProtocolError("an echo names a 32-byte node and an address of 1-255 bytes")
    body = identity.public.key + asked + now.to_bytes(8, "big") + raw
    return body + identity.sign(ECHO_TAG, body)


def decode_echo_request(data: bytes, *, asked: bytes, now: int) -> EchoRequest:
    """The request, its signature checked before anything is read; MalformedError (the
    layout, another node asked), BadSignatureError, ExpiredError (more than 5 minutes
    from ``now``)."""
    if not 72 + 1 + 64 <= len(data) <= 72 + MAX_ECHO_ADDRESS + 64:
        raise MalformedError("an echo request is 137-391 bytes")
    body, signature = data[:-64], data[-64:]
    node = PublicIdentity(body[:32])
    node.verify(ECHO_TAG, body, signature)
    if body[32:64] != asked:
        raise MalformedError("the echo request is addressed to another node")
    made = int.from_bytes(body[64:72], "big")
    if abs(now - made) > ECHO_SKEW_MS:
        raise ExpiredError("the echo request is not from now (clock off by more than 5 min?)")
    try:
        address = body[72:].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("the echo request's address is not UTF-8") from None
    return EchoRequest(node=node, address=address, made_ms=made)
