"""Offers in bulk from CSV: a header row of field names, one offer a row, lists separated by
';'. Every row is checked and every problem named by its row (the header is row 1) and
field; the CLI's `listing import` (row by row, as it sends them) and the console's import
read files the same way."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sync.errors import InvalidInput
from sync.kinds import Content
from transfer.records import LISTING, audience_from_json, content_from_json

EXTRA = frozenset({"audience", "status", "private_note"})
_INTEGER = re.compile(r"-?[0-9]{1,18}")
ROWS_MAX = 20_000
_RECORD_FIELD = re.compile(r"records\[(\d+)\]\.(.*)")


@dataclass(frozen=True)
class ImportRow:
    row: int  # its line in the file (the header is 1)
    content: Content
    audience: tuple[str, ...]
    private_note: str


@dataclass(frozen=True)
class RowProblem:
    row: int  # 0: the file as a whole
    field: str
    description: str


def number_or_text(text: str) -> int | str:
    """An integer typed as ASCII digits (at most 18), else the text itself, for the rules
    to name as not a number."""
    return int(text) if _INTEGER.fullmatch(text) else text


def site_problem(field: str, description: str, rows: Sequence[int]) -> RowProblem:
    """A site's problem with `records[i].field` as the problem of the file row the i-th
    record checked came from (`rows`, in the order checked); any other as the file's."""
    m = _RECORD_FIELD.fullmatch(field)
    if m is None or int(m.group(1)) >= len(rows):
        return RowProblem(0, field, description)
    return RowProblem(rows[int(m.group(1))], m.group(2), description)


def read_offers_csv(text: str) -> tuple[list[ImportRow], list[RowProblem]]:
    """The offers a CSV file holds and every problem in it (nothing is good unless both the
    file and each row are; a problem of the file as a whole is the only one named)."""
    good: list[ImportRow] = []
    problems: list[RowProblem] = []
    for item in iter_offers_csv(text):
        if isinstance(item, ImportRow):
            good.append(item)
        elif item.row == 0:
            return [], [item]
        else:
            problems.append(item)
    return good, problems


def iter_offers_csv(text: str) -> Iterator[ImportRow | RowProblem]:
    """Each row of a CSV file as it is read: the offer it holds, or each of its problems. A
    problem of the file as a whole (row 0: not CSV, no rows, too many) comes last."""
    text = text.removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    reader = csv.DictReader(io.StringIO(text, newline=""))
    count = 0
    try:
        for n, row in enumerate(reader, start=2):
            count += 1
            if count > ROWS_MAX:
                count += sum(1 for _ in reader)
                yield RowProblem(0, "(file)", f"at most {ROWS_MAX} rows a file (got {count})")
                return
            offer = _offer_of(n, row)
            if isinstance(offer, ImportRow):
                yield offer
            else:
                yield from offer
    except csv.Error as exc:
        yield RowProblem(0, "(file)", f"not a CSV file ({exc})")
        return
    if not count:
        yield RowProblem(0, "(file)", "no rows under the header")


def _offer_of(n: int, row: dict[str | None, str | list[str] | None]) -> ImportRow | list[RowProblem]:
    """Row `n`'s offer, or every problem it has."""
    problems: list[RowProblem] = []
    doc: dict[str, object] = {}
    for key, text_value in row.items():
        if key is None:
            problems.append(RowProblem(n, "(row)", "more cells than header columns"))
            continue
        value = (text_value or "").strip() if isinstance(text_value, str) else ""
        default = LISTING.defaults.get(key)
        if not value:
            continue
        if isinstance(default, tuple) or key == "audience":
            doc[key] = [w.strip() for w in value.split(";") if w.strip()]
        elif isinstance(default, bool):
            doc[key] = value.lower() in ("true", "yes", "1")
        elif isinstance(default, int):
            doc[key] = number_or_text(value)
        else:
            doc[key] = value
    try:
        content = content_from_json(LISTING, doc, extra=EXTRA)
        audience = audience_from_json(doc)
    except InvalidInput as exc:
        problems.extend(RowProblem(n, v.field, v.description) for v in exc.violations)
    if problems:
        return problems
    note = doc.get("private_note")
    return ImportRow(n, content, audience, note if isinstance(note, str) else "")
