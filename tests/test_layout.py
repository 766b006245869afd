"""The layout holds: the federation core names no record kind, and each room imports
only what it may.

The core (sync/) is read, docstrings aside, for the kind names as strings and for the
domain's kind constants: a kind is described to the core by a `sync.kinds.Kind` in the
`KindSet` its site is built with, never named by it. Imports are read from every module
of each room and held to the direction hub -> transfer -> sync <- transfer <- node, with
cli above them all; hub and node never import each other."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KIND_NAMES = frozenset({"listing", "request", "firm", "interest", "suggestion"})
KIND_CONSTANTS = frozenset({"LISTING", "REQUEST", "FIRM", "INTEREST", "SUGGESTION", "EVENT", "KINDS"})
# What each room may import of the project's packages (besides itself and the generated code).
MAY_IMPORT = {
    "sync": frozenset(),
    "transfer": frozenset({"sync"}),
    "console": frozenset({"sync", "transfer"}),
    "hub": frozenset({"sync", "transfer", "console"}),
    "node": frozenset({"sync", "transfer", "console"}),
    "cli": frozenset({"sync", "transfer", "console", "hub", "node"}),
}


def core_files() -> list[Path]:
    return [p for p in sorted((ROOT / "sync").rglob("*.py")) if "migrations" not in p.parts]


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


def test_the_core_names_no_record_kind() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}: {text}" for p in core_files() for line, text in kind_mentions(p)]
    assert not found, "the core names a record kind:\n" + "\n".join(found)


def imported_rooms(path: Path) -> set[str]:
    rooms: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            rooms.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            rooms.add(node.module.split(".")[0])
    return rooms & set(MAY_IMPORT)


def test_each_room_imports_only_what_it_may() -> None:
    wrong = []
    for room, allowed in MAY_IMPORT.items():
        for path in sorted((ROOT / room).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for other in sorted(imported_rooms(path) - allowed - {room}):
                wrong.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not wrong, "\n".join(wrong)


def test_the_scan_sees_a_kind_name_in_code_but_not_in_a_docstring(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""About a listing and "firm"."""\n\ndef f(kind: str) -> bool:\n    return kind == "firm"\n')
    assert kind_mentions(sample) == [(4, '"firm"')]


def test_the_import_scan_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import json\nfrom transfer.records import KINDS\nfrom . import sibling\nimport hub.site\n")
    assert imported_rooms(sample) == {"transfer", "hub"}


def test_the_cli_starts_without_the_database_layer() -> None:
    """Every CLI command loads `cli.main`; SQLAlchemy and alembic take half a second to
    import and only the commands that open a store need them (they import it themselves)."""
    import subprocess
    import sys

    probe = "import sys, cli.main; print(sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
