"""Child processes of the API die with the process that started them."""

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


def exit_when_orphaned(poll_seconds: float = 1.0) -> None:
    """In a pool's child (an upload checker): exit once the parent is gone.

    Not the death signal above: it would fire when the threadpool thread that happened to start the
    child ends, not the process. A daemon thread looks at the parent every `poll_seconds`.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent.pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-when-orphaned", daemon=True).start()
