"""API worker processes die with the supervisor that started them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys


def die_with_parent() -> None:
    """In a uvicorn worker: be killed when the supervisor dies, as a single API process would be.

    Workers outlive a supervisor killed with SIGKILL (or by the OOM killer) and go on serving the
    port, so an operator's restart could not bind it. The signal comes when the parent's *thread*
    that started this process ends: uvicorn starts and restarts workers from its main thread. Linux
    only; a no-op elsewhere and in a process that is not a multiprocessing child.
    """
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent.pid:  # it died before the call above: nothing would signal us
        os._exit(1)
