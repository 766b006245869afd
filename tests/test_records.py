"""Listing files: every problem named, one per line."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.errors import InvalidInput
from sync.kinds import Action, Change, pins_of
from transfer.records import KINDS, LISTING, content_from_json, listing_content


def problems(doc: object) -> list[str]:
    with pytest.raises(InvalidInput) as e:
        content_from_json(LISTING, doc)
    return [str(v) for v in e.value.violations]


def test_good_listing() -> None:
    doc = {"title": "T", "summary": "s", "keywords": ["membranes", "solar-energy"], "trl": 4}
    got = content_from_json(LISTING, doc)
    assert got == listing_content(
        title="T", summary="s", keywords=("membranes", "solar-energy"), taxonomy="tt-2026.1", trl=4
    )


def test_missing_title() -> None:
    assert problems({"summary": "x"}) == ["title: required field is missing"]


def test_wrong_types_each_named() -> None:
    got = problems({"title": 5, "keywords": "water", "trl": "six"})
    assert got == [
        "title: must be a string (got int)",
        "keywords: must be a list of strings (got str)",
        "trl: must be an integer from 1 to 9 (got str)",
    ]


def test_unknown_field_and_ranges() -> None:
    got = problems({"title": "x" * 300, "trl": 12, "colour": "red", "keywords": ["a", 3]})
    assert "colour: unknown field" in got
    assert "trl: must be an integer from 1 to 9 (got 12)" in got
    assert "keywords[1]: must be a string of valid Unicode text" in got
    assert "title: at most 256 characters (got 300)" in got


def test_lone_surrogate_is_named() -> None:
    assert problems({"title": "\ud800"}) == ["title: is not valid Unicode text (lone surrogate)"]


def test_not_an_object() -> None:
    assert problems([1, 2]) == ["(document): must be a JSON object"]


def test_limits() -> None:
    got = problems({"title": "x" * 257, "summary": "y" * 501, "keywords": ["membranes"] * 6})
    assert got == [
        "title: at most 256 characters (got 257)",
        "summary: at most 500 characters (got 501)",
        "keywords: at most 5 keywords (got 6)",
    ]


def test_translations_travel_whole_through_the_wire_codec() -> None:
    """A composite field (an offer's translations) is written as repeated messages and read
    back as the same tuples, so the signed body and the content agree."""
    from sync.clock import Stamp
    from sync.envelope import make_version, read_version
    from sync.keys import SigningKey
    from sync.kinds import create_change
    from techbridge.v1 import envelope_pb2

    content = listing_content(
        title="Membrane",
        translations=(("es", "Membrana", "resumen", "descripción"), ("he", "ממברנה", "", "")),
    )
    v = make_version(
        SigningKey.generate(),
        site="tel-aviv",
        record_id="r",
        hlc=Stamp(1, 0),
        change=create_change(content),
        kind=LISTING,
    )
    body = envelope_pb2.VersionBody.FromString(v.body)
    assert [(t.language, t.title) for t in body.change.listing.translations] == [("es", "Membrana"), ("he", "ממברנה")]
    assert read_version(v.body, v.signatures, KINDS).change.get("translations") == content.value("translations")


# Pins were first the digest of json.dumps(separators=(",", ":"), ensure_ascii=False); ids made
# that way must keep their pins whatever encoder computes them now.
def _pins_by_the_standard_library(kind_name: str, change: Change) -> bytes:
    kind = KINDS[kind_name]
    fixed = [[n, change.get(n) if n in change.names else kind.defaults[n]] for n in sorted(kind.fixed)]
    data = json.dumps([kind.name, fixed], separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(b"techbridge/v1/pins\x00" + data).digest()[:8]


@given(
    to_record=st.text(),
    to_owner=st.text(alphabet=st.characters(codec="utf-8")),
    from_centre=st.sampled_from(["brussels", 'a"b\\c', "\x00\x1f\x7f", "\u2028\u2029", "שלום", "대전", "😀"]),
    until=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_pins_are_the_digest_of_the_standard_librarys_compact_json(
    to_record: str, to_owner: str, from_centre: str, until: int
) -> None:
    interest = Change(
        (("from_centre", from_centre), ("to_owner", to_owner), ("to_record", to_record)), Action.CREATE, "sent"
    )
    assert pins_of(KINDS["interest"], interest) == _pins_by_the_standard_library("interest", interest)
    listing = Change((("title", "x"), ("valid_until_ms", until)), Action.CREATE, "draft")
    assert pins_of(LISTING, listing) == _pins_by_the_standard_library("listing", listing)
