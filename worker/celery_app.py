"""The worker's Celery app, made when the worker starts: the API's broker settings plus what long GPU
jobs need, the tasks, and the hooks that start the reconciler and hand running jobs back on shutdown.

Importing this module does nothing: `tunery worker` (api/cli.py) calls `make_app` with the process's
settings. The tasks are registered on the app here (worker/tasks.py imports no app), so the two
modules import each other in one direction only.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_ready, worker_shutting_down

from api import queue
from api.config import Settings
from worker import tasks

if TYPE_CHECKING:
    from worker.registry import Capacity

_stop_reconciling = threading.Event()
# What `tunery worker` said this worker offers; registered once the worker is ready.
_registration: dict[str, Any] = {}


def make_app(settings: Settings, capacity: Capacity | None = None, queues: list[str] | None = None) -> Celery:
    queue.make_broker_folders(settings)
    app = Celery("tunery-worker")
    app.conf.update(queue.celery_config(settings))
    # One job at a time per worker process: a training run owns the GPU.
    app.conf.worker_concurrency = 1
    app.conf.worker_pool = "solo"
    tasks.register(app)
    # Celery's signals are global; the uids keep a second app in one process from doubling them.
    _registration.update(
        capacity=capacity, queues=queues or queue.worker_queues(capacity.pool if capacity else None)
    )
    worker_ready.connect(_start_reconciler, dispatch_uid="tunery.start_reconciler")
    worker_shutting_down.connect(_hand_back_running_jobs, dispatch_uid="tunery.hand_back_running_jobs")
    return app


def _start_reconciler(**_: Any) -> None:
    from worker.reconciler import start_loop
    from worker.registry import detect_capacity, start_heartbeat
    from worker.runtime import runtime

    capacity = _registration.get("capacity") or detect_capacity()
    start_heartbeat(runtime(), capacity, _registration["queues"], _stop_reconciling)
    start_loop(runtime(), _stop_reconciling)


def _hand_back_running_jobs(**_: Any) -> None:
    # SIGTERM (a pod replaced, `tunery serve` stopping): Celery waits for the running task, and the
    # task's watcher sees this flag, has the trainer checkpoint and stop, and queues the job again.
    from worker.jobs.run import shutting_down
    from worker.registry import sign_off
    from worker.runtime import runtime

    shutting_down.set()
    _stop_reconciling.set()
    # The database may be what is going away; then the heartbeat's age tells the rest.
    with contextlib.suppress(Exception):
        sign_off(runtime())
