"""Generate techbridge.v1 Python code (and mypy stubs) from proto/.

Usage: python scripts/genproto.py [OUT_DIR]   (default: the repository root)

`make proto` runs it into the repository; tests/test_proto_drift.py runs it
into a temporary folder and fails when the committed code differs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"


def generate(out: Path) -> list[Path]:
    package = out / "techbridge" / "v1"
    if package.exists():
        for old in package.glob("*_pb2*"):
            old.unlink()
    package.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "techbridge" / "v1").glob("*.proto"))
    bindir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--mypy_out=quiet:{out}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_grpc_out=quiet:{out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for init in (out / "techbridge" / "__init__.py", package / "__init__.py"):
        init.write_text('"""Generated from proto/ by scripts/genproto.py; do not edit."""\n')
    (package / "py.typed").write_text("")
    return sorted(p for p in package.iterdir() if p.is_file())


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    written = generate(target)
    print(f"generated {len(written)} files in {target / 'techbridge' / 'v1'}")
    shutil.rmtree(target / "techbridge" / "v1" / "__pycache__", ignore_errors=True)
