from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Hub, Node, make_hub, make_node

CENTRES = [("tel-aviv", "IL"), ("brussels", "BE"), ("toledo", "ES"), ("daejeon", "KR")]

# Every test file belongs to one layer, marked on its tests: `unit` (pure code, no server),
# `store` (the store contract on every backend), `integration` (real servers on ephemeral
# ports, the CLI, the demo) and `faults` (SIGKILL, network namespaces, slow consumers,
# restores, tampering). Integration and fault tests are also `slow`: `pytest -m "not slow"`
# (`make test-fast`) runs the rest in well under a minute.
LAYERS: dict[str, str] = {
    "test_merge": "unit",
    "test_envelope": "unit",
    "test_merge_properties": "unit",
    "test_interest_properties": "unit",
    "test_records": "unit",
    "test_signing": "unit",
    "test_check_ahead": "store",
    "test_proto_drift": "unit",
    "test_layout": "unit",
    "test_fulltext": "unit",
    "test_matching": "unit",
    "test_match_api": "integration",
    "test_alerts": "integration",
    "test_suggestions": "integration",
    "test_report": "integration",
    "test_kept_figures": "store",
    "test_staff": "store",
    "test_staff_cli": "integration",
    "test_bulk_import": "integration",
    "test_search_store": "store",
    "test_store": "store",
    "test_audience": "integration",
    "test_cli": "integration",
    "test_conflicts_e2e": "integration",
    "test_demo": "integration",
    "test_domain": "integration",
    "test_e2e": "integration",
    "test_enrolment": "integration",
    "test_expiry": "integration",
    "test_fuzz": "integration",
    "test_incremental": "integration",
    "test_keys": "integration",
    "test_live": "integration",
    "test_postgres_hub": "integration",
    "test_schedule": "integration",
    "test_search": "integration",
    "test_server_errors": "integration",
    "test_tls": "integration",
    "test_reasons": "integration",
    "test_crash_both": "faults",
    "test_crash_hub": "faults",
    "test_many_nodes": "faults",
    "test_netns": "faults",
    "test_restart": "faults",
    "test_slow_consumer": "faults",
    "test_sync_faults": "faults",
    "test_tamper": "faults",
    "test_console": "integration",
    "test_console_browser": "integration",
    "test_console_messages": "unit",
    "test_runtime": "unit",
    "test_operations": "integration",
    "test_store_replicas": "store",
    "test_replicas": "faults",
    "test_metrics": "integration",
    "test_backup": "faults",
    "test_deploy": "integration",
}
SLOW_LAYERS = frozenset({"integration", "faults"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unplaced = sorted({item.path.stem for item in items if item.path.stem not in LAYERS})
    if unplaced:
        raise pytest.UsageError(f"test files with no layer in tests/conftest.py LAYERS: {', '.join(unplaced)}")
    for item in items:
        layer = LAYERS[item.path.stem]
        item.add_marker(getattr(pytest.mark, layer))
        if layer in SLOW_LAYERS:
            item.add_marker(pytest.mark.slow)


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
