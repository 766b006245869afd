"""Exponential backoff with jitter, for a site that cannot reach its hub.

After the n-th failure in a row the next attempt waits BASE * 2**(n-1) seconds,
capped, multiplied by a random factor in [0.5, 1): thirty centres that lost
the hub at the same moment do not come back at the same moment. The state
(failures in a row, next attempt) lives in the store's peer_state row, so a
restart keeps it; a success, or the hub answering a watch stream, clears it.
"""

from __future__ import annotations

import random

BASE_MS = 2_000
CAP_MS = 5 * 60 * 1000


def delay_ms(failures: int, rng: random.Random | None = None, *, base_ms: int = BASE_MS, cap_ms: int = CAP_MS) -> int:
    if failures <= 0:
        return 0
    raw = min(cap_ms, base_ms * 2 ** min(failures - 1, 30))
    return int(raw * (0.5 + 0.5 * (rng or random).random()))
