"""The federation core names no record kind: what it needs of a kind is declared on the
kind. This reads the core's code (docstrings aside) for the kind names as strings and for the
domain's kind constants, and holds each file to the count it has now: a new mention fails, and
so does one removed without lowering its count here, so the list stays the true remainder."""

from __future__ import annotations

import ast
import io
import tokenize
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KIND_NAMES = frozenset({"listing", "request", "firm", "interest"})
KIND_CONSTANTS = frozenset({"LISTING", "REQUEST", "FIRM", "INTEREST"})
# The technology-transfer domain, which still lives beside the core in sync/.
DOMAIN_MODULES = frozenset({"records.py", "taxonomy.py", "search.py", "expiry.py", "firms.py", "admin.py"})
# What the core still names, per file: the last lookups of a kind by name.
REMAINING = {
    "sync/envelope.py": 2,  # whether an origin is a centre or a firm
    "sync/merge.py": 2,  # the kind of a record with no versions
    "sync/site.py": 10,  # interest targets, firm keys and relaying
    "sync/store/search.py": 2,  # the kinds search covers
    "sync/store/trust.py": 2,  # firm keys, erasure
}


def core_files() -> list[Path]:
    files = []
    for path in sorted((ROOT / "sync").rglob("*.py")):
        if "migrations" in path.parts or (path.parent.name == "sync" and path.name in DOMAIN_MODULES):
            continue
        files.append(path)
    return files


def docstring_lines(source: str) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return lines


def kind_mentions(path: Path) -> list[tuple[int, str]]:
    source = path.read_text()
    skip = docstring_lines(source)
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.start[0] in skip:
            continue
        if tok.type == tokenize.STRING:
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):
                continue
            if value in KIND_NAMES:
                found.append((tok.start[0], tok.string))
        elif tok.type == tokenize.NAME and tok.string in KIND_CONSTANTS:
            found.append((tok.start[0], tok.string))
    return found


def test_the_core_names_no_more_kinds_than_it_did() -> None:
    counts: Counter[str] = Counter()
    where: dict[str, list[str]] = {}
    for path in core_files():
        rel = path.relative_to(ROOT).as_posix()
        for line, text in kind_mentions(path):
            counts[rel] += 1
            where.setdefault(rel, []).append(f"{rel}:{line}: {text}")
    for rel, count in counts.items():
        assert count <= REMAINING.get(rel, 0), "the core names a record kind:\n" + "\n".join(where[rel])
    stale = {rel: n for rel, n in REMAINING.items() if counts[rel] < n}
    assert not stale, f"fewer kind names than REMAINING says; lower it: {stale} -> {dict(counts)}"


def test_the_scan_sees_a_kind_name_in_code_but_not_in_a_docstring(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""About a listing and "firm"."""\n\ndef f(kind: str) -> bool:\n    return kind == "firm"\n')
    assert kind_mentions(sample) == [(4, '"firm"')]
