"""The committed techbridge/v1 code is what `make proto` makes from proto/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generate(out: Path) -> list[Path]:
    spec = importlib.util.spec_from_file_location("genproto", ROOT / "scripts" / "genproto.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(mod.generate(out))


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in _generate(tmp_path)}
    committed = {p.name: p.read_bytes() for p in (ROOT / "techbridge" / "v1").iterdir() if p.is_file()}
    stale = sorted(n for n in fresh if committed.get(n) != fresh[n])
    extra = sorted(set(committed) - set(fresh))
    assert not stale and not extra, f"run `make proto`: stale {stale}, not generated {extra}"


def test_proto_is_not_a_python_package() -> None:
    assert not list((ROOT / "proto").rglob("*.py"))
    assert all(p.read_text().count("package techbridge.v1;") == 1 for p in (ROOT / "proto").rglob("*.proto"))


def test_enums_start_unspecified() -> None:
    import re

    for proto in (ROOT / "proto").rglob("*.proto"):
        for name, body in re.findall(r"enum (\w+) \{([^}]*)\}", proto.read_text()):
            first = re.search(r"(\w+)\s*=\s*0;", body)
            assert first and first.group(1).endswith("_UNSPECIFIED"), f"{proto.name}: enum {name}"
