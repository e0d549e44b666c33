"""The errors raised by protocol/.

``LocalProtocolError`` means the caller misused the API (a bug on this side);
``RemoteProtocolError`` means the bytes we were given are not acceptable (the peer, a relay
or a file misbehaved). Each concrete failure has its own subclass so that callers can
react precisely (drop and penalise a peer, re-request a chunk, ask for a fresh message).
"""

from collections.abc import Mapping


class ProtocolError(Exception):
    """Base class of every error raised by protocol/."""


class LocalProtocolError(ProtocolError):
    """The caller misused the API: wrong argument type or size, a limit exceeded on send,
    a method called in the wrong state. Never caused by remote input."""


class CaseRefused(ProtocolError):
    """A well-formed request that the case's state or the actor's role does not allow
    now (claiming a case already taken, reporting a case one does not hold). The message
    says why, for the person who asked; ``code`` names the refusal and ``values`` its
    particulars (codes too: a state, a role), for the node to say it in their language."""

    def __init__(
        self, reason: str, *, code: str, values: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.values = dict(values or {})


class RemoteProtocolError(ProtocolError):
    """Bytes received from elsewhere were rejected. Never caused by a local bug."""


class MalformedError(RemoteProtocolError):
    """The bytes do not follow the layout of SPEC.md: bad magic, truncated, trailing
    bytes, wrong field type or size, unknown map key, a field out of its range."""


class UnsupportedVersionError(RemoteProtocolError):
    """The version byte names a format version this implementation does not speak."""


class TooLargeError(RemoteProtocolError):
    """A length field or the whole input exceeds the limit set for its kind; raised before
    the oversized data is read or parsed."""


class BadSignatureError(RemoteProtocolError):
    """The Ed25519 signature does not verify over the domain tag and the exact bytes."""


class UnknownSignerError(RemoteProtocolError):
    """The signature is valid but the signer is not one the caller accepts (not the
    expected sender, not an admitted node, not a member with that role)."""


class ReplayError(RemoteProtocolError):
    """A message with this sender and nonce was already accepted inside the window."""


class ExpiredError(RemoteProtocolError):
    """A timestamp lies outside the accepted window: too old, too far in the future, or a
    record past its expiry."""


class IntegrityError(RemoteProtocolError):
    """Encrypted data failed its check: a chunk whose hash is not the one in the signed
    manifest, an AEAD tag that does not verify (substituted, reordered, spliced or
    truncated chunk), or a wrapped key that does not open."""
