"""Which Redis database (1-15 of the test server) a test may use, so that no two users meet.

Per-test databases are emptied before and after each test; a service that lives for a whole package
(the conformance suite's live Tunery) must never be emptied under it, so each pytest-xdist worker
keeps one database of its own for that, from the top of the range.
"""

from __future__ import annotations

import os
import random

DATABASES = range(1, 16)


def _worker() -> tuple[int, int]:
    """(this worker's index, how many workers); (0, 1) outside pytest-xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... or unset
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not name.startswith("gw") or count <= 1:
        return 0, 1
    return int(name[2:]), count


def for_package() -> int:
    index, count = _worker()
    return DATABASES[-count + index]


def for_test() -> int:
    index, count = _worker()
    shared = DATABASES[: len(DATABASES) - count]
    share = shared[index::count]
    if not share:
        raise RuntimeError(
            f"{count} pytest-xdist workers are too many for Redis's {len(DATABASES)} databases"
        )
    return random.choice(share)
