from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Hub, Node, make_hub, make_node

CENTRES = [("tel-aviv", "IL"), ("brussels", "BE"), ("toledo", "ES"), ("daejeon", "KR")]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = make_hub(tmp_path / "hq")
    yield h
    h.stop()


@pytest.fixture
def network(tmp_path: Path, hub: Hub) -> Iterator[tuple[Hub, dict[str, Node]]]:
    nodes = {c: make_node(hub, tmp_path / c, c, country=cc) for c, cc in CENTRES}
    yield hub, nodes
    for n in nodes.values():
        n.stop()
