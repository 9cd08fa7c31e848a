"""Celery tasks, registered under the names api/queue.py sends. They take ids, nothing else."""

from __future__ import annotations

from api import queue
from worker import job_runner
from worker.celery_app import app
from worker.runtime import runtime


@app.task(name=queue.VALIDATE_JOB)
def validate_job(job_id: str) -> None:
    job_runner.validate_job(runtime(), job_id)


@app.task(name=queue.RUN_JOB)
def run_job(job_id: str) -> None:
    job_runner.run_job(runtime(), job_id)
