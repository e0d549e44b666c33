"""What envelopes (SPEC.md §4) and signed documents (§5) check alike before their
signature: a frame's size against its limit and its fixed header, then the head of the
header, magic, version and kind code, each refusal naming the frame ("envelope",
"document")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from protocol.errors import MalformedError, TooLargeError, UnsupportedVersionError
from protocol.identity import SIGNATURE_SIZE

K = TypeVar("K")
CALLED = {"envelope": "an envelope", "document": "a signed document"}  # in "not ..."


def check_size(data: bytes, limit: int, header_size: int, name: str) -> None:
    """TooLargeError past ``limit``; MalformedError when shorter than the fixed header
    and the signature."""
    if len(data) > limit:
        raise TooLargeError(f"{name} of {len(data)} bytes exceeds {limit}")
    if len(data) < header_size + SIGNATURE_SIZE:
        raise MalformedError(f"{name} shorter than its fixed header and signature")


def kind_of(
    kinds: Mapping[int, K], head: tuple[bytes, int, int], expected: tuple[bytes, int], name: str
) -> K:
    """The kind of a frame whose header starts with ``head`` (magic, version, kind
    code), the ``expected`` magic and version; the errors name the frame ``name``."""
    magic, version, code = head
    if magic != expected[0]:
        raise MalformedError(f"not {CALLED.get(name, name)} (bad magic)")
    if version != expected[1]:
        raise UnsupportedVersionError(f"{name} version {version} is not supported")
    spec = kinds.get(code)
    if spec is None:
        raise MalformedError(f"unknown {name} kind code {code}")
    return spec
