"""Strict, bounded msgpack decoding and the small schema language of payloads.

Only the msgpack types nil, bool, int, str, bin, array and map are accepted: ext types
are refused while decoding, floats by every Schema field. Map keys are strings. Every
container and string is bounded before it is read. A schema names every key a map may
hold; unknown keys are rejected (SPEC.md section 3). Decoded values never reach the
application without passing a Schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol.errors import LocalProtocolError, MalformedError, TooLargeError


def pack(value: Any) -> bytes:
    """msgpack-encode ``value`` (str as str, bytes as bin). Floats are refused."""
    try:
        # What msgpack.packb does, without its Python wrapper's keyword dictionary: a
        # fresh Packer each time, so no buffer outlives the call.
        packed: bytes = msgpack.Packer(use_bin_type=True, strict_types=True).pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"value cannot be encoded: {exc}") from exc
    return packed


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedError("msgpack ext types are not allowed")


def unpack(data: bytes, *, max_size: int) -> Any:
    """Decode exactly one msgpack value of at most ``max_size`` bytes, strictly."""
    if len(data) > max_size:
        raise TooLargeError(f"{len(data)} bytes exceeds the limit of {max_size}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_no_ext,
            max_str_len=max_size,
            max_bin_len=max_size,
            max_array_len=max_size,
            max_map_len=max_size,
            max_ext_len=0,
        )
    except MalformedError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedError(f"not valid msgpack: {str(exc)[:120]}") from exc
    # Types (no floats), nesting and sizes are then enforced by the caller's Schema,
    # which names every field and its type: nothing unchecked reaches the application.
    return value


# --- schema ---------------------------------------------------------------------------


Check = Callable[[Any], Any]
"""A compiled ``Field.check`` with its ``where`` bound: see ``Field.checker``."""


class Field:
    """A rule for one value of a decoded payload."""

    def check(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def checker(self, where: str) -> Check:
        """``check`` with ``where`` bound, for a hot path: built once, it gives the same
        results and raises the same errors with the same messages.

        The fields below return a function that accepts the usual case directly and
        hands anything else to ``check``: what is refused, and the message, are decided
        there only. (This default just binds ``where``.)"""
        check = self.check
        return lambda value: check(value, where)


@dataclass(frozen=True)
class Int(Field):
    lo: int = 0
    hi: int = 2**63 - 1

    def check(self, value: Any, where: str) -> int:
        if type(value) is not int:
            raise MalformedError(f"{where} must be an integer")
        if not self.lo <= value <= self.hi:
            raise MalformedError(f"{where} must be between {self.lo} and {self.hi}")
        return value

    def checker(self, where: str) -> Check:
        lo, hi, check = self.lo, self.hi, self.check

        def check_int(value: Any) -> Any:
            if type(value) is int and lo <= value <= hi:
                return value
            return check(value, where)

        return check_int


@dataclass(frozen=True)
class Bool(Field):
    def check(self, value: Any, where: str) -> bool:
        if type(value) is not bool:
            raise MalformedError(f"{where} must be true or false")
        return value

    def checker(self, where: str) -> Check:
        check = self.check

        def check_bool(value: Any) -> Any:
            return value if type(value) is bool else check(value, where)

        return check_bool


@dataclass(frozen=True)
class Bytes(Field):
    min: int = 0
    max: int = 2**32 - 1

    def check(self, value: Any, where: str) -> bytes:
        if type(value) is not bytes:
            raise MalformedError(f"{where} must be binary")
        if not self.min <= len(value) <= self.max:
            size = f"exactly {self.min}" if self.min == self.max else f"{self.min}-{self.max}"
            raise MalformedError(f"{where} must be {size} bytes")
        return value

    def checker(self, where: str) -> Check:
        lo, hi, check = self.min, self.max, self.check

        def check_bytes(value: Any) -> Any:
            if type(value) is bytes and lo <= len(value) <= hi:
                return value
            return check(value, where)

        return check_bytes


@dataclass(frozen=True)
class Str(Field):
    max: int = 1024
    min: int = 0
    choices: tuple[str, ...] = ()

    def check(self, value: Any, where: str) -> str:
        if type(value) is not str:
            raise MalformedError(f"{where} must be text")
        if not self.min <= len(value) <= self.max:
            raise MalformedError(f"{where} must be {self.min}-{self.max} characters")
        if self.choices and value not in self.choices:
            raise MalformedError(f"{where} must be one of {', '.join(self.choices)}")
        return value

    def checker(self, where: str) -> Check:
        lo, hi, choices, check = self.min, self.max, self.choices, self.check

        def check_str(value: Any) -> Any:
            if type(value) is str and lo <= len(value) <= hi and (not choices or value in choices):
                return value
            return check(value, where)

        return check_str


@dataclass(frozen=True)
class Optional(Field):
    inner: Field

    def check(self, value: Any, where: str) -> Any:
        return None if value is None else self.inner.check(value, where)

    def checker(self, where: str) -> Check:
        inner = self.inner.checker(where)

        def check_optional(value: Any) -> Any:
            return None if value is None else inner(value)

        return check_optional


@dataclass(frozen=True)
class List(Field):
    item: Field
    max: int

    def check(self, value: Any, where: str) -> list[Any]:
        if type(value) is not list:
            raise MalformedError(f"{where} must be a list")
        if len(value) > self.max:
            raise MalformedError(f"{where} has more than {self.max} items")
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def checker(self, where: str) -> Check:
        # The items are checked without naming their index; on a refusal ``check`` runs
        # again from the start and raises the same error with the index in its message.
        item, most, check = self.item.checker(f"{where}[]"), self.max, self.check

        def check_list(value: Any) -> Any:
            if type(value) is list and len(value) <= most:
                try:
                    return [item(v) for v in value]
                except MalformedError:
                    pass
            return check(value, where)

        return check_list


@dataclass(frozen=True)
class Tuple(Field):
    items: tuple[Field, ...]

    def check(self, value: Any, where: str) -> list[Any]:
        if type(value) is not list or len(value) != len(self.items):
            raise MalformedError(f"{where} must be a list of {len(self.items)} items")
        pairs = enumerate(zip(self.items, value, strict=True))
        return [f.check(v, f"{where}[{i}]") for i, (f, v) in pairs]

    def checker(self, where: str) -> Check:
        items = tuple(f.checker(f"{where}[{i}]") for i, f in enumerate(self.items))
        size, check = len(items), self.check

        def check_tuple(value: Any) -> Any:
            if type(value) is list and len(value) == size:
                return [f(v) for f, v in zip(items, value, strict=True)]
            return check(value, where)

        return check_tuple


@dataclass(frozen=True)
class Scalars(Field):
    """A map of short text keys to scalar values (text, integer, bool, nil)."""

    max_items: int = 64
    max_text: int = 8192

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise MalformedError(f"{where} must be a map")
        if len(value) > self.max_items:
            raise MalformedError(f"{where} has more than {self.max_items} entries")
        for key, item in value.items():
            if not 1 <= len(key) <= 64:
                raise MalformedError(f"{where} keys must be 1-64 characters")
            if item is None or type(item) in (bool, int):
                continue
            if type(item) is str and len(item) <= self.max_text:
                continue
            raise MalformedError(f"{where}.{key} must be short text, an integer, a bool or nil")
        return dict(value)


@dataclass(frozen=True)
class Schema(Field):
    """A map with exactly these keys (keys of Optional fields may be absent)."""

    fields: Mapping[str, Field]

    def check(self, value: Any, where: str = "payload") -> dict[str, Any]:
        if type(value) is not dict:
            raise MalformedError(f"{where} must be a map")
        unknown = set(value) - set(self.fields)
        if unknown:
            raise MalformedError(f"{where} has unknown field {sorted(unknown)[0]!r}")
        out: dict[str, Any] = {}
        for key, field in self.fields.items():
            if key not in value and not isinstance(field, Optional):
                raise MalformedError(f"{where} lacks field {key!r}")
            out[key] = field.check(value.get(key), f"{where}.{key}")
        return out

    def checker(self, where: str = "payload") -> Check:
        known = frozenset(self.fields)
        steps = tuple(
            (key, field.checker(f"{where}.{key}"), isinstance(field, Optional))
            for key, field in self.fields.items()
        )
        check = self.check

        def check_map(value: Any) -> Any:
            if type(value) is not dict or not known.issuperset(value):
                return check(value, where)
            out: dict[str, Any] = {}
            for key, field, optional in steps:
                if key in value:
                    out[key] = field(value[key])
                elif optional:
                    out[key] = None
                else:
                    return check(value, where)
            return out

        return check_map
