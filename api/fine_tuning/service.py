"""Fine-tuning jobs: create, read, list, and the user's controls (cancel, pause, resume).

Validation and training happen in the worker. The controls only change the job row: the row is the
truth, and the worker that runs the job watches it and stops its trainer when the row says so.
"""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from api import clock, queue
from api.auth.service import Caller
from api.config import Settings
from api.db import after_commit, reads_before_writing
from api.errors import InvalidRequest, NotFound, model_not_found
from api.estimates import service as estimates
from api.evals import job_link
from api.files import service as files
from api.fine_tuning import repository, start_from
from api.fine_tuning.methods import method_and_hyperparameters
from api.fine_tuning.recipe_schema import RecipeIn
from api.fine_tuning.schemas import JobCreate
from api.fine_tuning.status import (
    CANCELLED,
    PAUSED,
    QUEUED,
    RUNNING,
    TERMINAL,
    VALIDATING_FILES,
    InvalidTransition,
    transition,
)
from api.graders import judge
from api.graders import service as graders
from api.ids import new_id
from api.models.store import BaseModelEntry, ModelStore
from api.tables import FineTuningJob, FineTuningJobEvent
from catalog.methods import DEFAULT_METHOD, METHODS
from catalog.recipes import RECIPE_TYPES, Recipe
from graders import grader_json


def create_job_once(
    session: Session,
    settings: Settings,
    store: ModelStore,
    caller: Caller,
    request: JobCreate,
    idempotency_key: str | None,
) -> FineTuningJob:
    """Create a job and have it validated once committed; for a key this project used before,
    return that job instead."""
    # Everything that checks the request reads first; on SQLite the write lock is then held only for
    # the two INSERTs (api.db.reads_before_writing).
    with reads_before_writing(session) as reads:
        earlier = (
            repository.by_idempotency_key(reads, caller.project.pk, idempotency_key)
            if idempotency_key
            else None
        )
        if earlier is not None:
            return earlier
        job = plan_job(reads, settings, store, caller, request, idempotency_key)
    if idempotency_key:
        savepoint = session.begin_nested()
        try:
            save_job(session, job)
            savepoint.commit()
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its job.
            savepoint.rollback()
            earlier = repository.by_idempotency_key(session, caller.project.pk, idempotency_key)
            if earlier is None:
                raise
            return earlier
    else:
        save_job(session, job)
    job_id = job.id
    # The message goes out only once the job is committed: a worker must find the row it names.
    after_commit(session, lambda: queue.enqueue(settings, queue.VALIDATE_JOB, job_id))
    return job


def plan_job(
    session: Session,
    settings: Settings,
    store: ModelStore,
    caller: Caller,
    request: JobCreate,
    idempotency_key: str | None = None,
) -> FineTuningJob:
    method_type, hyperparameters = method_and_hyperparameters(request)
    method = {"type": method_type, **_grader_of(session, settings, store, caller, request)}
    _check_validation_settings(request, method_type, hyperparameters)
    recipe = request.recipe or RecipeIn()
    start = None
    if start_from.is_fine_tuned_name(request.model):
        start = start_from.resolve(session, settings, caller, request.model, method_type, recipe)
    base = store.get(start.base_model if start else request.model)
    if base is None:
        raise model_not_found(request.model, param="model")
    _check_recipe_fits(recipe, base)
    _check_distribution_trains(settings, recipe, method_type)
    # Refused now, saying what it needs, if no GPU pool can hold it; else the pool that trains it. A
    # multi-node job trains on the Ray cluster's GPUs: any worker of the default pool drives it.
    pool = (
        estimates.place(
            session, settings, base, method_type, hyperparameters, Recipe.from_dict(recipe.model_dump())
        )
        if recipe.num_nodes == 1
        else None
    )
    _check_file(session, caller, request.training_file, "training_file")
    eval_on_success = job_link.read_link(session, caller, request.eval, base.id) if request.eval else None
    if request.validation_file:
        _check_file(session, caller, request.validation_file, "validation_file")
    job = FineTuningJob(
        id=new_id("ftjob-"),
        project_pk=caller.project.pk,
        model=base.id,
        start_from=start.as_record() if start else None,
        training_file=request.training_file,
        validation_file=request.validation_file,
        status=VALIDATING_FILES,
        hyperparameters=hyperparameters,
        method=method,
        recipe=recipe.model_dump(),
        seed=request.seed if request.seed is not None else secrets.randbelow(2**31),
        suffix=request.suffix,
        job_metadata=request.metadata,
        integrations=[i.model_dump(exclude_none=True) for i in request.integrations]
        if request.integrations is not None
        else None,
        result_files=[],
        created_at=clock.now(),
        idempotency_key=idempotency_key,
        pool=pool,
        eval_on_success=eval_on_success,
    )
    # Noted on the row as it is inserted (one statement, not an insert and an update): the message
    # for it goes out after the commit, in create_job_once.
    queue.mark_enqueued(job)
    # The caller's project is the job's; the response reads it without another query.
    set_committed_value(job, "project", caller.project)
    return job


def save_job(session: Session, job: FineTuningJob) -> None:
    """The planned job's row and its first two events."""
    repository.add(session, job)
    repository.add_events(
        session, job, [f"Created fine-tuning job: {job.id}", f"Validating training file: {job.training_file}"]
    )


def get_job(session: Session, caller: Caller, job_id: str, *, for_update: bool = False) -> FineTuningJob:
    job = repository.get(session, caller.scope, job_id, for_update=for_update)
    if job is None:
        raise NotFound(f"No fine-tuning job found with id {job_id}", param="fine_tuning_job_id")
    return job


def list_jobs(
    session: Session, caller: Caller, *, after: str | None, limit: int, metadata: dict[str, str]
) -> tuple[list[FineTuningJob], bool]:
    cursor = get_job(session, caller, after) if after else None
    rows = repository.page(session, caller.scope, after=cursor, limit=limit, metadata=metadata)
    return rows[:limit], len(rows) > limit


def list_events(
    session: Session, caller: Caller, job_id: str, *, after: str | None, limit: int
) -> tuple[list[FineTuningJobEvent], bool]:
    job = get_job(session, caller, job_id)
    cursor = None
    if after:
        cursor = repository.get_event(session, job, after)
        if cursor is None:
            raise NotFound(f"No event {after} in fine-tuning job {job_id}", param="after")
    rows = repository.events_page(session, job, after=cursor, limit=limit)
    return rows[:limit], len(rows) > limit


def cancel_job(session: Session, caller: Caller, job_id: str) -> FineTuningJob:
    """Any job not yet finished can be cancelled; a running trainer is stopped by its worker."""
    job = get_job(session, caller, job_id, for_update=True)
    if job.status in TERMINAL:
        # 400, not 409: the SDK retries a 409 by itself, and this can never succeed.
        raise InvalidTransition(f"Job {job.id} has already {job.status} and cannot be cancelled.")
    was_running = job.status == RUNNING
    transition(session, job, CANCELLED, "Fine-tuning job cancelled by the user")
    if was_running:
        repository.add_event(session, job, "Stopping the trainer")
    return job


def pause_job(session: Session, caller: Caller, job_id: str) -> FineTuningJob:
    """A running job checkpoints and stops (its worker sees the row); a queued one waits."""
    job = get_job(session, caller, job_id, for_update=True)
    if job.status not in (RUNNING, QUEUED):
        raise InvalidTransition(f"Job {job.id} is {job.status}: only a queued or running job can be paused.")
    transition(session, job, PAUSED, "Fine-tuning job paused by the user; saving a checkpoint")
    return job


def resume_job(session: Session, settings: Settings, caller: Caller, job_id: str) -> FineTuningJob:
    """Back to the queue; the next worker continues from the checkpoint the pause saved."""
    job = get_job(session, caller, job_id, for_update=True)
    if job.status != PAUSED:
        raise InvalidTransition(f"Job {job.id} is {job.status}: only a paused job can be resumed.")
    where = f" from step {job.resume_step}" if job.resume_step else ""
    transition(session, job, QUEUED, f"Fine-tuning job resumed{where}")
    queue.mark_enqueued(job)
    pool = job.pool
    after_commit(session, lambda: queue.enqueue(settings, queue.RUN_JOB, job_id, pool=pool))
    return job


def jobs_with_models(session: Session, caller: Caller) -> list[FineTuningJob]:
    """The caller's jobs whose fine-tuned model exists (succeeded, not deleted)."""
    return repository.with_fine_tuned_models(session, caller.scope)


def job_of_model(session: Session, caller: Caller, model_id: str) -> FineTuningJob | None:
    """The caller's job whose fine-tuned model is `model_id`, if any."""
    return repository.by_fine_tuned_model(session, caller.scope, model_id)


def record_event(session: Session, job: FineTuningJob, message: str) -> None:
    repository.add_event(session, job, message)


def method_task(job: FineTuningJob) -> str:
    """The kind of model the job's method trains: "CAUSAL_LM" (it chats) or "SEQ_CLS" (it classifies)."""
    return METHODS[(job.method or {}).get("type") or DEFAULT_METHOD].task


def fine_tuned_model_name(job: FineTuningJob) -> str:
    """OpenAI's form: ft:{base}:{organization}:{suffix}:{id}, the suffix segment empty when absent."""
    return f"ft:{job.model}:{job.project.name}:{job.suffix or ''}:{job.id[-8:]}"


def checkpoint_model_name(job: FineTuningJob, step: int) -> str:
    return f"{fine_tuned_model_name(job)}:ckpt-step-{step}"


def _grader_of(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, request: JobCreate
) -> dict[str, object]:
    """A grading method's grader, checked as graders.validate checks it and its judging models as
    graders.run resolves them: {"grader": {...}} or {}."""
    if request.method is None or not METHODS[request.method.type].grader:
        return {}
    param = f"method.{request.method.type}.grader"
    section = getattr(request.method, request.method.type)
    if section is None:
        raise InvalidRequest(
            f"{param} is required: the grader that rewards the model's answers",
            param=param,
            code="invalid_grader",
        )
    grader = graders.read_grader(section.grader, param=param)
    judge.check_judges(session, settings, store, caller, grader, param)
    return {"grader": grader_json(grader)}


def _check_validation_settings(request: JobCreate, method_type: str, hyperparameters: dict) -> None:
    """eval_interval and eval_samples set the validation on the validation file: without one they mean
    nothing, and are refused rather than ignored."""
    if request.validation_file:
        return
    for name in ("eval_interval", "eval_samples"):
        if hyperparameters.get(name, "auto") != "auto":
            param = f"method.{method_type}.hyperparameters.{name}"
            raise InvalidRequest(
                f"{param} sets the validation on the validation file, and this job has none: give "
                "validation_file, or leave it out.",
                param=param,
            )


def _check_recipe_fits(recipe: RecipeIn, base: BaseModelEntry) -> None:
    """Refuse now what the trainer would refuse minutes later: bitfit on a base without biases."""
    if RECIPE_TYPES[recipe.type].needs_biases and base.has_bias_terms() is False:
        fitting = [name for name, row in RECIPE_TYPES.items() if not row.needs_biases]
        raise InvalidRequest(
            f"recipe.type {recipe.type!r} trains only bias terms, and the layers of {base.id} have none "
            f"(Llama-style models have no biases). Recipe types that fit this model: {', '.join(fitting)}.",
            param="recipe.type",
            code="invalid_recipe",
        )


def _check_distribution_trains(settings: Settings, recipe: RecipeIn, method_type: str) -> None:
    """What estimates accept but the trainer does not run: reinforcement under FSDP (its ranks would
    have to sample answers in lockstep), and more than one machine where no Ray cluster is configured."""
    if recipe.distributed == "fsdp" and method_type == "reinforcement":
        raise InvalidRequest(
            "recipe.distributed 'fsdp' does not train the reinforcement method yet; use 'ddp', or a "
            "quantized recipe (qlora) for a model that one GPU can't hold.",
            param="recipe.distributed",
            code="invalid_recipe",
        )
    if recipe.num_nodes > 1 and settings.ray_address is None:
        raise InvalidRequest(
            f"recipe.num_nodes {recipe.num_nodes} needs a Ray cluster, and this service has none "
            "(TUNERY_RAY_ADDRESS is unset); use num_gpus on one machine, or ask the operator for one.",
            param="recipe.num_nodes",
            code="invalid_recipe",
        )


def _check_file(session: Session, caller: Caller, file_id: str, param: str) -> None:
    # Files are always the job's own project's, even for an admin acting across projects.
    row = files.in_project(session, caller.project.pk, file_id)
    if row is None:
        raise InvalidRequest(f"invalid {param}: no such file {file_id}", param=param, code="file_not_found")
    if row.purpose != "fine-tune":
        raise InvalidRequest(
            f"invalid {param}: file {file_id} has purpose {row.purpose!r}, not 'fine-tune'",
            param=param,
            code="invalid_file_purpose",
        )
