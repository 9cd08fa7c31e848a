"""The worker's Celery app: the API's broker settings plus what long GPU jobs need."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutting_down

from api.config import Settings
from api.queue import celery_config

app = Celery("tunery-worker")
app.conf.update(celery_config(Settings()))
# One job at a time per worker process: a training run owns the GPU.
app.conf.worker_concurrency = 1
app.conf.worker_pool = "solo"

import worker.tasks  # noqa: E402,F401  (registers the tasks on `app`)

_stop_reconciling = threading.Event()


@worker_ready.connect
def _start_reconciler(**_: Any) -> None:
    from worker.reconciler import start_loop
    from worker.runtime import runtime

    start_loop(runtime(), _stop_reconciling)


@worker_shutting_down.connect
def _hand_back_running_jobs(**_: Any) -> None:
    # SIGTERM (a pod replaced, `tunery serve` stopping): Celery waits for the running task, and the
    # task's watcher sees this flag, has the trainer checkpoint and stop, and queues the job again.
    from worker.jobs.run import shutting_down

    shutting_down.set()
    _stop_reconciling.set()
