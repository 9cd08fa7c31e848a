"""run_job: a queued job claimed, staged, trained by the trainer process under a watch, and finished."""

from __future__ import annotations

import logging
import threading

from api import clock
from api.db import session_scope
from api.fine_tuning import repository
from api.fine_tuning.status import PAUSED, QUEUED, RUNNING
from worker import leases
from worker.jobs import progress
from worker.jobs.claim import claim
from worker.jobs.finish import fail, finish
from worker.jobs.stage import stage, workdir
from worker.runtime import Runtime
from worker.supervisor import Action, TrainerExit, UnreadableLine, Watch, run_trainer
from worker.training.progress import TrainerEvent
from worker.training.spec import TrainingSpec

log = logging.getLogger("tunery.worker")

# Set when the worker is asked to shut down (worker/celery_app.py's worker_shutting_down handler):
# running jobs checkpoint and go back to the queue instead of failing.
shutting_down = threading.Event()


def run_job(rt: Runtime, job_id: str) -> None:
    if not claim(rt, job_id):
        return
    try:
        trainer = _train(rt, job_id)
    except Exception as exc:
        log.exception("job %s failed in the worker", job_id)
        with session_scope(rt.sessions) as session:
            job = repository.get_for_update(session, job_id)
            if job is not None and job.lease_owner == rt.worker_id:
                leases.release(job, rt.worker_id)
                if job.status == RUNNING:
                    fail(session, job, "internal_error", f"{type(exc).__name__}: {exc}")
        return
    finish(rt, job_id, trainer)


def _train(rt: Runtime, job_id: str) -> TrainerExit:
    stage(rt, job_id)
    spec_path = workdir(rt, job_id) / "spec.json"
    started = clock.now()

    def on_event(event: TrainerEvent | UnreadableLine) -> None:
        progress.record(rt, job_id, event, started)

    def decide() -> Action:
        with session_scope(rt.sessions) as watch:
            job = repository.get_for_update(watch, job_id)
            if job is None or not leases.renew(job, rt.worker_id, rt.settings.lease_seconds):
                return Action.KILL  # deleted, or our lease expired and another worker has the job
            if job.status == RUNNING:
                return Action.STOP if shutting_down.is_set() else Action.CONTINUE
            # Paused, or paused and already resumed (queued): save a checkpoint to continue from.
            return Action.STOP if job.status in (PAUSED, QUEUED) else Action.KILL

    watch = Watch(decide, interval=rt.settings.heartbeat_seconds)
    recipe = TrainingSpec.read(spec_path).recipe
    log_path = workdir(rt, job_id) / "trainer.log"
    if recipe.num_nodes > 1:
        address = rt.settings.ray_address
        if address is None:
            raise RuntimeError("recipe.num_nodes above 1 needs a Ray cluster: set TUNERY_RAY_ADDRESS")
        # Imported here: only a worker that drives a cluster needs Ray's client (the cluster extra).
        from worker.cluster.driver import run_on_cluster

        placement = rt.settings.ray_placement_seconds
        return run_on_cluster(address, placement, job_id, spec_path, log_path, on_event, watch)
    processes = recipe.processes if recipe.distributed != "none" else 1
    return run_trainer(spec_path, log_path, on_event, watch, processes)
