"""What a serving process tells its garbage collector (`sync.runtime.settle_heap`), checked
in a fresh interpreter so that this test process's collector is left as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import gc, weakref
from sync.runtime import YOUNG_GC_THRESHOLD, settle_heap
import sync.site  # the start-up heap: modules, descriptors, table metadata

class Node:  # an object that can take part in a reference cycle
    me = None

old = Node(); old.me = old; held = weakref.ref(old); del old  # garbage before the settle
settle_heap()
assert held() is None, "garbage made before the settle was frozen, not freed"
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
assert gc.get_threshold()[0] == YOUNG_GC_THRESHOLD, gc.get_threshold()
new = Node(); new.me = new; later = weakref.ref(new); del new  # a cycle made while serving
kept = [Node() for _ in range(YOUNG_GC_THRESHOLD * 2)]  # allocations alone start a collection
assert later() is None, "a cycle made after the settle was never collected"
print("settled")
"""


def test_a_served_process_freezes_its_start_up_heap_and_still_frees_later_cycles() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "settled", r.stderr
