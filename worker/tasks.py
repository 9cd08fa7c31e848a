"""Celery tasks, registered under the names api/queue.py sends. They take ids, nothing else.

`register` puts them on the worker's app (worker/celery_app.py makes it at start): this module
imports no app, so importing it reads no settings and connects to no broker.
"""

from __future__ import annotations

from celery import Celery

from api import queue
from worker.evals.run import run_eval as grade_eval_run
from worker.jobs import export, run, validate
from worker.runtime import runtime
from worker.webhook_delivery import deliver


def validate_job(job_id: str) -> None:
    validate.validate_job(runtime(), job_id)


def run_job(job_id: str) -> None:
    run.run_job(runtime(), job_id)


def export_model(job_id: str, step: int | None) -> None:
    export.export_model(runtime(), job_id, step)


def deliver_webhook(delivery_id: str) -> None:
    deliver(runtime(), delivery_id)


def run_eval(run_id: str) -> None:
    grade_eval_run(runtime(), run_id)


def register(app: Celery) -> None:
    app.task(name=queue.VALIDATE_JOB)(validate_job)
    app.task(name=queue.RUN_JOB)(run_job)
    app.task(name=queue.EXPORT_MODEL)(export_model)
    app.task(name=queue.DELIVER_WEBHOOK)(deliver_webhook)
    app.task(name=queue.RUN_EVAL)(run_eval)
