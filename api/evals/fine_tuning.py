"""When a job that named an eval (api/evals/job_link.py) succeeds: a run of the eval starts on the
fine-tuned model and one on its base, and the job's events name both runs. Called by the worker."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.auth.service import Caller
from api.config import Settings
from api.errors import TuneryError
from api.evals import repository, service
from api.fine_tuning import repository as jobs
from api.models.store import ModelStore
from api.tables import FineTuningJob


def start_runs(session: Session, settings: Settings, store: ModelStore, job: FineTuningJob) -> list[str]:
    """On the job's success: a run on its fine-tuned model and one on its base, each queued once the
    success commits; the job's event names both (or says why they could not start)."""
    link = job.eval_on_success
    if not link or not job.fine_tuned_model:
        return []
    caller = Caller(project=job.project)
    started: list[dict[str, str]] = []
    try:
        row = service.get_eval(session, caller, link["eval_id"])
        for model in (job.fine_tuned_model, job.model):
            run = service.start_run(
                session,
                settings,
                store,
                caller,
                row,
                {**link["data_source"], "model": model},
                name=f"{job.id} {'fine-tuned' if model == job.fine_tuned_model else 'base'}",
                job_id=job.id,
            )
            started.append({"id": run.id, "model": model})
    except TuneryError as error:
        jobs.add_event(session, job, f"Eval {link['eval_id']} could not start: {error.message}", level="warn")
        return [run["id"] for run in started]
    tuned, base = started
    jobs.add_event(
        session,
        job,
        f"Eval runs started: {tuned['id']} on {tuned['model']}, {base['id']} on the base {base['model']}",
        data={"eval_id": link["eval_id"], "runs": started},
    )
    return [tuned["id"], base["id"]]


def runs_of_job(session: Session, job_id: str) -> list[str]:
    return [run.id for run in repository.runs_of_job(session, job_id)]
