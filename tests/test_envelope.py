"""A version written here carries the fields it was made from, not read back from its
body: they must be the fields every other site reads from the same bytes. A record's values
read off a message all at once are the values read field by field."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.clock import Stamp
from sync.codec import fill_values, values_from_pb, values_to_pb
from sync.envelope import make_version, read_version
from sync.keys import SigningKey
from sync.kinds import Action, Change, FieldValue, Kind, change_of, make_content
from transfer.records import KINDS

KEY = SigningKey.generate()
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}


def value_of(kind: Kind, name: str) -> st.SearchStrategy[FieldValue]:
    """Any value of the field's type, its default (which need not be what an unset field
    reads as) and its unset value among them."""
    return st.one_of(st.just(kind.defaults[name]), st.just(kind.wire_unset[name]), _any_value_of(kind, name))


def _any_value_of(kind: Kind, name: str) -> st.SearchStrategy[FieldValue]:
    default = kind.defaults[name]
    parts = kind.composite_fields.get(name)
    if parts is not None:
        return st.lists(st.tuples(*[TEXT for _ in parts]), max_size=3).map(tuple)
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        wire = kind.values_message.DESCRIPTOR.fields_by_name[name]
        return st.integers(*INT_RANGES[wire.cpp_type])
    if isinstance(default, tuple):
        return st.lists(TEXT, max_size=4).map(tuple)
    return TEXT


@st.composite
def changes(draw: st.DrawFn) -> tuple[Kind, Change]:
    kind = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    names = draw(st.sets(st.sampled_from(sorted(kind.defaults)), max_size=len(kind.defaults)))
    fields = tuple((n, draw(value_of(kind, n))) for n in sorted(names))
    action = draw(st.sampled_from([None, *Action]))
    status = draw(st.sampled_from([None, *sorted(kind.statuses)]))
    audience = tuple(sorted(set(draw(st.lists(st.sampled_from(["brussels", "daejeon", "hq"]), max_size=3)))))
    return kind, Change(fields, action, status, audience)


@settings(max_examples=300, deadline=None)
@given(
    change=changes(),
    parents=st.lists(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), max_size=3),
    wall_ms=st.integers(0, 2**48),
    counter=st.integers(0, 2**16),
    nonce=st.binary(max_size=16),
)
def test_a_written_version_equals_its_body_read_back(
    change: tuple[Kind, Change], parents: list[str], wall_ms: int, counter: int, nonce: bytes
) -> None:
    kind, what = change
    written = make_version(
        KEY,
        site="brussels",
        origin="daejeon",
        record_id="brussels-0001",
        hlc=Stamp(wall_ms, counter),
        change=what,
        parents=tuple(parents),
        record_nonce=nonce,
        kind=kind,
    )
    read = read_version(written.body, written.signatures, KINDS)
    assert read == written
    assert read.change.fields == written.change.fields  # the same values, not just equal-comparing ones
    assert [type(v) for _, v in read.change.fields] == [type(v) for _, v in written.change.fields]


@settings(max_examples=300, deadline=None)
@given(change=changes())
def test_every_value_read_off_a_message_at_once_equals_each_read_by_name(change: tuple[Kind, Change]) -> None:
    kind, what = change
    msg = values_to_pb(kind, what.fields)
    at_once = values_from_pb(kind, msg)
    by_name = values_from_pb(kind, msg, kind.field_names())
    assert at_once == by_name
    assert [type(v) for _, v in at_once] == [type(v) for _, v in by_name]
    assert dict(at_once) == {**kind.wire_unset, **dict(what.fields)}


@settings(max_examples=300, deadline=None)
@given(change=changes())
def test_a_message_filled_without_unset_values_is_the_same_message(change: tuple[Kind, Change]) -> None:
    kind, what = change
    filled = kind.values_message()
    fill_values(kind, filled, what.fields)
    full = values_to_pb(kind, what.fields)
    assert filled.SerializeToString(deterministic=True) == full.SerializeToString(deterministic=True)
    assert values_from_pb(kind, filled) == values_from_pb(kind, full)


def test_a_field_at_its_default_but_not_its_unset_value_is_filled() -> None:
    request = KINDS["request"]
    fields = (("confidentiality", request.defaults["confidentiality"]),)
    assert request.defaults["confidentiality"] != request.wire_unset["confidentiality"]
    filled = request.values_message()
    fill_values(request, filled, fields)
    assert filled == values_to_pb(request, fields)


@given(change=changes(), extra=st.sets(st.sampled_from(["not_a_field", "zz_unknown"]), max_size=1))
def test_a_contents_values_for_names_are_each_names_value_in_name_order(
    change: tuple[Kind, Change], extra: set[str]
) -> None:
    kind, ch = change
    content = make_content(kind, dict(ch.fields), sorted(kind.statuses)[0])
    names = [n for n, _ in ch.fields]
    if extra:
        with pytest.raises(KeyError):
            change_of(content, [*names, *extra])
        return
    assert change_of(content, [*reversed(names), *names]) == tuple((n, content.value(n)) for n in sorted(names))
