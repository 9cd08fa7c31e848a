"""Celery tasks, registered under the names api/queue.py sends. They take ids, nothing else."""

from __future__ import annotations

from api import queue
from worker.celery_app import app
from worker.jobs import run, validate
from worker.runtime import runtime


@app.task(name=queue.VALIDATE_JOB)
def validate_job(job_id: str) -> None:
    validate.validate_job(runtime(), job_id)


@app.task(name=queue.RUN_JOB)
def run_job(job_id: str) -> None:
    run.run_job(runtime(), job_id)
