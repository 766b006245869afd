"""What a serving process tells its garbage collector (`sync.runtime.settle_heap`) and its
C allocator (`sync.runtime.bound_malloc_arenas`), checked in a fresh interpreter so that
this test process's are left as they were."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

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


ARENAS_PROBE = """
import ctypes, os, sys, threading
from sync.runtime import bound_malloc_arenas

if sys.argv[1] == "bounded":
    assert bound_malloc_arenas(2), "the cap was not set"
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
started = threading.Barrier(7)

def allocate():
    started.wait()  # all six threads alive at once, each making its first allocations
    held = [libc.malloc(4096) for _ in range(100)]
    started.wait()
    for p in held:
        libc.free(p)

threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads:
    t.start()
started.wait(); started.wait()
for t in threads:
    t.join()
sys.stderr.flush()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    r = subprocess.run(
        [sys.executable, "-c", ARENAS_PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr
    return sum(1 for line in r.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
def test_a_served_process_caps_its_malloc_arenas_however_many_threads_allocate() -> None:
    # Six threads allocating at once: glibc gives each an arena of its own, unless capped.
    assert _arenas("free") >= 6
    assert _arenas("bounded") == 2


@pytest.mark.parametrize(
    "setting", [("MALLOC_ARENA_MAX", "4"), ("GLIBC_TUNABLES", "glibc.malloc.check=0:glibc.malloc.arena_max=4")]
)
def test_the_operators_malloc_arena_setting_stands(setting: tuple[str, str]) -> None:
    probe = "from sync.runtime import bound_malloc_arenas; print(bound_malloc_arenas())"
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    env[setting[0]] = setting[1]
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
