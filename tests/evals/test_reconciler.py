"""The reconciler rings again for eval runs: a queued run whose message the broker lost, and a run in
progress whose worker stopped renewing its lease (queued again, or failed once out of attempts)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from sqlalchemy import update

from api import clock
from api.config import Settings
from api.queue import EVAL_QUEUE
from api.tables import EvalRun
from tests.api.test_jobs import queued_job_ids
from tests.support.evals import custom, row
from tests.support.openai_graders import GUIDE_STRING_CHECK
from tests.worker.conftest import runtime  # noqa: F401
from tests.worker.test_reconciler import empty_the_broker
from worker.reconciler import GRACE_SECONDS, reconcile
from worker.runtime import Runtime

pytestmark = pytest.mark.integration


def queued_run(sdk: openai.OpenAI) -> tuple[str, str]:
    made = sdk.evals.create(data_source_config=custom(), testing_criteria=[GUIDE_STRING_CHECK])  # type: ignore[arg-type, list-item]
    source = {"type": "file_content", "content": [row({"label": "a"}, "a")]}
    return made.id, sdk.evals.runs.create(made.id, data_source={"type": "jsonl", "source": source}).id  # type: ignore[arg-type]


def set_run(runtime: Runtime, run_id: str, **columns: Any) -> None:  # noqa: F811
    with runtime.sessions.begin() as session:
        session.execute(update(EvalRun).where(EvalRun.id == run_id).values(**columns))


def test_a_queued_run_whose_message_was_lost_is_enqueued_again(
    sdk: openai.OpenAI,
    runtime: Runtime,  # noqa: F811
    settings: Settings,
) -> None:
    _, run_id = queued_run(sdk)
    assert queued_job_ids(settings, EVAL_QUEUE) == [run_id]
    assert reconcile(runtime)["eval_runs"] == []  # just sent: its message may be in flight
    empty_the_broker(settings)
    set_run(runtime, run_id, enqueued_at=clock.now() - GRACE_SECONDS - 5)
    assert reconcile(runtime)["eval_runs"] == [run_id]
    assert queued_job_ids(settings, EVAL_QUEUE) == [run_id]
    assert reconcile(runtime)["eval_runs"] == []  # and only once


def test_a_run_whose_worker_died_is_queued_again_then_failed_out_of_attempts(
    sdk: openai.OpenAI,
    runtime: Runtime,  # noqa: F811
    settings: Settings,
) -> None:
    eval_id, run_id = queued_run(sdk)
    expired = {"status": "in_progress", "lease_owner": "gone:1", "lease_expires_at": clock.now() - 1}
    set_run(runtime, run_id, attempts=1, **expired)
    assert reconcile(runtime)["eval_runs"] == [run_id]
    assert sdk.evals.runs.retrieve(run_id, eval_id=eval_id).status == "queued"
    set_run(runtime, run_id, attempts=settings.max_attempts, **expired)
    reconcile(runtime)
    failed = sdk.evals.runs.retrieve(run_id, eval_id=eval_id)
    assert failed.status == "failed" and failed.error.code == "too_many_attempts"
