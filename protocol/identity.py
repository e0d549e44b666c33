"""Identities: Ed25519 keys for nodes and people, ids derived from them.

An id *is* the 32-byte Ed25519 public key, so nothing but the key can claim it. Its text
form (SPEC.md section 2) is base32 with one Luhn mod 32 check character per 13 characters,
grouped by 7 for reading over the phone: any single mistyped character and most swaps of
two neighbours are caught. X25519 keys for encryption are derived from the Ed25519 keys
(the birational map of RFC 7748), so one key pair serves both.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import nacl.exceptions
import nacl.public
import nacl.signing
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _sodium

from protocol.errors import BadSignatureError, LocalProtocolError, MalformedError

Rng = Callable[[int], bytes]

KEY_SIZE = 32
SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = b"tsf/1/"

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
# Characters people confuse when reading or typing, as syncthing does.
_CONFUSABLE = str.maketrans({"0": "O", "1": "I", "8": "B"})
_GROUP = 13
ID_TEXT_LENGTH = 56


def _luhn32(chars: str) -> str:
    """The Luhn mod N check character (N = 32) of ``chars`` over the base32 alphabet."""
    factor = 2
    total = 0
    for ch in reversed(chars):
        addend = factor * _INDEX[ch]
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _ALPHABET[(32 - total % 32) % 32]


@lru_cache(maxsize=256)
def _domain_prefix(tag: str) -> bytes:
    """``domain_message`` up to the data (tags are a few constants: made once each)."""
    return SIGNATURE_PREFIX + tag.encode("ascii") + b"\x00"


def domain_message(tag: str, data: bytes) -> bytes:
    """The exact bytes an Ed25519 signature covers: prefix, tag, a zero byte, the data."""
    return _domain_prefix(tag) + data


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of an identity: the id of a node or a person."""

    key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != KEY_SIZE:
            raise MalformedError("a public key is exactly 32 bytes")

    @classmethod
    def from_key_field(cls, key: bytes) -> PublicIdentity:
        """The id whose key is ``key``, a 32-byte field cut from a fixed layout (an
        envelope header): the same object as ``PublicIdentity(key)``, built without the
        dataclass machinery, which costs more than the rest on the receive path. Only
        the length is checked, since ``struct`` already gives bytes."""
        if len(key) != KEY_SIZE:
            raise MalformedError("a public key is exactly 32 bytes")
        identity = _new_object(cls)
        _set_key(identity, key)
        return identity

    @classmethod
    def from_text(cls, text: str) -> PublicIdentity:
        """Parse the text form; dashes, spaces and case are ignored, 0/1/8 read as O/I/B.

        Raises MalformedError naming the group whose check character does not match."""
        cleaned = "".join(text.split()).replace("-", "").upper().translate(_CONFUSABLE)
        if len(cleaned) != ID_TEXT_LENGTH:
            raise MalformedError(
                f"an id has {ID_TEXT_LENGTH} characters (without dashes), got {len(cleaned)}"
            )
        if any(c not in _INDEX for c in cleaned):
            raise MalformedError("an id uses only the letters A-Z and the digits 2-7")
        body = []
        for group in range(4):
            part = cleaned[group * 14 : group * 14 + 13]
            check = cleaned[group * 14 + 13]
            if _luhn32(part) != check:
                raise MalformedError(
                    f"the id's check character {group + 1} of 4 does not match: "
                    "a character was mistyped"
                )
            body.append(part)
        b32 = "".join(body)
        raw = base64.b32decode(b32 + "====")
        if len(raw) != KEY_SIZE or base64.b32encode(raw).decode().rstrip("=") != b32:
            raise MalformedError("the id's last character has bits that must be zero")
        return cls(raw)

    @property
    def text(self) -> str:
        """The human-checkable form, e.g. ``MFRGGZD-MFRGGZD-...`` (8 groups of 7)."""
        b32 = base64.b32encode(self.key).decode().rstrip("=")
        with_checks = "".join(
            b32[i : i + _GROUP] + _luhn32(b32[i : i + _GROUP]) for i in range(0, 52, _GROUP)
        )
        return "-".join(with_checks[i : i + 7] for i in range(0, ID_TEXT_LENGTH, 7))

    @property
    def short(self) -> str:
        """The first group of the text form, for logs and lists (not for trust decisions)."""
        return self.text[:7]

    def verify(self, tag: str, data: bytes | memoryview, signature: bytes) -> None:
        """Check ``signature`` over ``domain_message(tag, data)``; raise BadSignatureError.

        libsodium's ``crypto_sign_open`` is called directly, asked for no copy of the
        message (it checks and copies nothing more when given none): PyNaCl's binding
        allocates and copies the message back for every check."""
        if len(signature) != SIGNATURE_SIZE:
            raise MalformedError("a signature is exactly 64 bytes")
        signed = b"".join((signature, _domain_prefix(tag), data))
        if _sodium.crypto_sign_open(_ffi.NULL, _ffi.NULL, signed, len(signed), self.key) != 0:
            raise BadSignatureError(f"signature does not verify for {tag}")

    def x25519(self) -> nacl.public.PublicKey:
        """The X25519 public key that encrypts to this identity."""
        try:
            return nacl.signing.VerifyKey(self.key).to_curve25519_public_key()
        except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError) as exc:
            raise MalformedError("not a valid Ed25519 public key") from exc

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"PublicIdentity({self.text!r})"


_new_object = object.__new__
# The slot's own setter (the class is frozen: its __setattr__ refuses), as the
# dataclass's __init__ does through object.__setattr__, without looking the slot up.
_set_key = PublicIdentity.__dict__["key"].__set__


class Identity:
    """A private identity: the Ed25519 signing key of a node or a person."""

    __slots__ = ("_secret", "_signing", "public")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != KEY_SIZE:
            raise LocalProtocolError("an identity seed is exactly 32 bytes")
        self._signing = nacl.signing.SigningKey(seed)
        public = bytes(self._signing.verify_key)
        self._secret = seed + public  # libsodium's 64-byte secret key: seed || public key
        self.public = PublicIdentity(public)

    @classmethod
    def generate(cls, rng: Rng) -> Identity:
        """A new identity from 32 bytes of ``rng`` (os.urandom in production)."""
        return cls(rng(KEY_SIZE))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed; whoever holds it is this identity."""
        return bytes(self._signing)

    def sign(self, tag: str, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature over ``domain_message(tag, data)``."""
        message = _domain_prefix(tag) + data
        signed = bytearray(SIGNATURE_SIZE + len(message))
        _sodium.crypto_sign(
            _ffi.from_buffer(signed), _ffi.NULL, message, len(message), self._secret
        )
        return bytes(signed[:SIGNATURE_SIZE])

    def x25519(self) -> nacl.public.PrivateKey:
        """The X25519 private key matching ``self.public.x25519()``."""
        return self._signing.to_curve25519_private_key()

    def __repr__(self) -> str:
        return f"Identity({self.public.text!r})"
