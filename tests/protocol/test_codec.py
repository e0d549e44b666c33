"""A compiled checker (``Field.checker``) is its field's ``check``: same result, same error.

Every schema of protocol/ is tried with values built from its own fields: valid ones, and
ones a step off (a bound crossed, a key missing or unknown, a wrong type deep inside)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import bundle, caseform, codec, documents, replay
from protocol.errors import MalformedError
from protocol.kinds import ENVELOPE_KINDS

SCHEMAS: dict[str, codec.Schema] = {
    **{f"{k.name} body": k.schema for k in ENVELOPE_KINDS},
    **{f"{k.name} document": k.schema for k in documents.DOCUMENT_KINDS},
    "pair terms": documents.PAIR_TERMS,
    "case form": caseform.CASE_FORM,
    "bundle header": bundle._HEADER_SCHEMA,
    "replay state": replay._STATE,
}

ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def _sizes(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Lengths at and across the bounds (the upper one only when it is small)."""
    near = [n for n in (lo - 1, lo, lo + 1) if n >= 0]
    if hi <= 4096:
        near += [hi, hi + 1]
    return st.sampled_from(near) | st.integers(lo, min(hi, lo + 8))


def values(field: codec.Field) -> st.SearchStrategy[Any]:
    """Values for ``field``: mostly valid or a step off, sometimes anything at all."""
    if isinstance(field, codec.Int):
        edges = [field.lo - 1, field.lo, field.hi, field.hi + 1]
        near = st.sampled_from(edges) | st.integers(field.lo, min(field.hi, field.lo + 100))
    elif isinstance(field, codec.Bool):
        near = st.booleans()
    elif isinstance(field, codec.Bytes):
        near = _sizes(field.min, field.max).map(bytes)
    elif isinstance(field, codec.Str):
        if field.choices:
            near = st.sampled_from(field.choices) | st.just(field.choices[0] + "x")
        else:
            near = _sizes(field.min, field.max).map(lambda n: "é" * n)
    elif isinstance(field, codec.Optional):
        near = st.none() | values(field.inner)
    elif isinstance(field, codec.List):
        near = st.lists(values(field.item), max_size=min(field.max + 1, 4))
    elif isinstance(field, codec.Tuple):
        items = st.tuples(*(values(f) for f in field.items)).map(list)
        near = items | items.map(lambda v: v[:-1]) | items.map(lambda v: [*v, None])
    elif isinstance(field, codec.Scalars):
        scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.binary()
        near = st.dictionaries(st.sampled_from(["", "a", "k" * 65]), scalar, max_size=3)
    elif isinstance(field, codec.Schema):
        whole = st.fixed_dictionaries({k: values(f) for k, f in field.fields.items()})
        keys = sorted(field.fields)
        near = (
            whole
            | st.tuples(whole, st.sampled_from(keys)).map(
                lambda wk: {k: v for k, v in wk[0].items() if k != wk[1]}
            )
            | whole.map(lambda w: {**w, "unknown": 1})
        )
    else:  # pragma: no cover - a field type added to codec without a strategy here
        raise AssertionError(f"no strategy for {field!r}")
    return st.one_of(near, near, near, ANYTHING)


def outcome(check: Any, value: Any) -> tuple[str, Any]:
    try:
        return ("ok", check(value))
    except MalformedError as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_compiled_schema_gives_what_check_gives(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    value = data.draw(values(schema))
    assert outcome(schema.checker(name), value) == outcome(lambda v: schema.check(v, name), value)


def test_an_error_deep_in_a_list_names_its_index() -> None:
    # The list's fast path checks items without their index; the message still has it.
    field = codec.List(codec.Tuple((codec.Bytes(32, 32), codec.Int(0, 3))), 4)
    check = field.checker("updates")
    assert check([[bytes(32), 1], [bytes(32), 2]]) == [[bytes(32), 1], [bytes(32), 2]]
    with pytest.raises(MalformedError, match=r"^updates\[1\]\[1\] must be between 0 and 3$"):
        check([[bytes(32), 1], [bytes(32), 9]])


def test_an_absent_optional_field_reads_as_none() -> None:
    schema = codec.Schema({"a": codec.Int(), "b": codec.Optional(codec.Bytes())})
    assert schema.checker("x")({"a": 1}) == {"a": 1, "b": None}
    with pytest.raises(MalformedError, match=r"^x lacks field 'a'$"):
        schema.checker("x")({"b": b""})
