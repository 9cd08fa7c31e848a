"""The Celery *client* of the API: task names, queues, broker settings, and sending by name.

The API never imports worker/; worker/celery_app.py builds its app from the same `celery_config`.
Nothing is read or made at import: the client is built at the first enqueue, the worker's app when
the worker starts.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery import Celery

from api import clock
from api.config import Settings
from api.tables import FineTuningJob

VALIDATE_JOB = "tunery.validate_job"
RUN_JOB = "tunery.run_job"
EXPORT_MODEL = "tunery.export_model"
DELIVER_WEBHOOK = "tunery.deliver_webhook"
RUN_EVAL = "tunery.run_eval"

# Validation is light CPU work; training wants a GPU worker. Separate queues let a deployment run
# a few cheap validators and one trainer per GPU.
VALIDATION_QUEUE = "tunery.validation"
TRAINING_QUEUE = "tunery.training"
# A merged export loads a base model (torch, memory, a GPU if there is one) but must not wait behind
# hours of training: its own queue, which `tunery worker` consumes with the others by default.
EXPORT_QUEUE = "tunery.export"
# Webhook deliveries are short network calls that must not wait behind training: a queue of their own.
WEBHOOK_QUEUE = "tunery.webhooks"
# Eval runs wait on the inference backend, not on a GPU of their own: a queue of their own, so that they
# neither wait behind training nor hold up validation.
EVAL_QUEUE = "tunery.evals"
QUEUE_OF_TASK = {
    VALIDATE_JOB: VALIDATION_QUEUE,
    RUN_JOB: TRAINING_QUEUE,
    EXPORT_MODEL: EXPORT_QUEUE,
    DELIVER_WEBHOOK: WEBHOOK_QUEUE,
    RUN_EVAL: EVAL_QUEUE,
}
# Workers that name no pool; its training queue is TRAINING_QUEUE itself, so a deployment without
# pools (the embedded default) runs as it always did.
DEFAULT_POOL = "default"


def training_queue(pool: str | None) -> str:
    """Each GPU pool trains from a queue of its own: only its workers, whose GPUs fit the job, take it."""
    return TRAINING_QUEUE if pool in (None, DEFAULT_POOL) else f"{TRAINING_QUEUE}.{pool}"


def worker_queues(pool: str | None = None) -> list[str]:
    """What a worker of `pool` consumes by default: validation, exports, webhook deliveries, eval runs,
    and its pool's training."""
    return sorted({VALIDATION_QUEUE, EXPORT_QUEUE, WEBHOOK_QUEUE, EVAL_QUEUE, training_queue(pool)})


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings both apps share: a pure function of `settings` (see make_broker_folders)."""
    config: dict[str, Any] = {
        "task_routes": {name: {"queue": queue} for name, queue in QUEUE_OF_TASK.items()},
        "task_default_queue": VALIDATION_QUEUE,
        # A message is acknowledged when its task ends, not when it starts: a worker that dies
        # mid-task leaves the message to be delivered again (the job row says what to do with it).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        # Celery keeps its (here disabled) result backend per thread unless told it is thread-safe,
        # and making one scans the installed packages' entry points: under load, a share of every
        # job create went to that, on each new threadpool thread.
        "result_backend_thread_safe": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }
    if settings.broker_url:
        config["broker_url"] = settings.broker_url
        # Redis re-delivers an unacknowledged message after the visibility timeout; training runs
        # for hours, so the default hour would hand a running job to a second worker.
        config["broker_transport_options"] = {"visibility_timeout": 7 * 24 * 3600}
    else:
        folder = settings.broker_path
        config["broker_url"] = "filesystem://"
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # Broadcast exchanges; kombu's default is "control" in the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    return config


def make_broker_folders(settings: Settings) -> None:
    """The filesystem broker's folders (the embedded default), which kombu expects to exist."""
    if not settings.broker_url:
        for sub in ("queue", "processed", "control"):
            (settings.broker_path / sub).mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=8)
def _client(broker_key: tuple[str | None, str]) -> Celery:
    broker_url, data_dir = broker_key
    settings = Settings(broker_url=broker_url, data_dir=Path(data_dir))
    make_broker_folders(settings)
    app = Celery("tunery-api")
    app.conf.update(celery_config(settings))
    return app


def mark_enqueued(job: FineTuningJob, countdown: float | None = None) -> None:
    """Note on the job's row that a message for it is about to be sent (due after `countdown` s).

    Called in the transaction that makes the job due, before it commits; the message itself goes
    out only after the commit (`enqueue`). The reconciler reads this to find lost messages.
    """
    job.enqueued_at = clock.now() + math.ceil(countdown or 0)


def enqueue(
    settings: Settings,
    task_name: str,
    job_id: str,
    *more: str | int | None,
    countdown: float | None = None,
    pool: str | None = None,
) -> None:
    """Ring the doorbell for a job (`more`: the task's other ids, as EXPORT_MODEL's step). Call only
    after the transaction that changed the job (and marked it enqueued: `mark_enqueued`) committed.
    RUN_JOB goes to the training queue of the job's `pool`."""
    app = _client((settings.broker_url, str(settings.data_path)))
    name = training_queue(pool) if task_name == RUN_JOB else QUEUE_OF_TASK[task_name]
    app.send_task(task_name, args=[job_id, *more], queue=name, countdown=countdown, ignore_result=True)
