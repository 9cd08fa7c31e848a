"""The worker's Celery app: the API's broker settings plus what long GPU jobs need."""

from __future__ import annotations

from celery import Celery

from api.config import Settings
from api.queue import celery_config

app = Celery("tunery-worker")
app.conf.update(celery_config(Settings()))
# One job at a time per worker process: a training run owns the GPU.
app.conf.worker_concurrency = 1
app.conf.worker_max_tasks_per_child = 50

import worker.tasks  # noqa: E402,F401  (registers the tasks on `app`)
