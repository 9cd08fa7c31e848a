"""Objects the API tests need in a state the worker would put them in, made through the services.

The worker's own tests prove the worker makes these states; the API tests start from them so each
route is tested in every state without training a model first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.checkpoints import service as checkpoints
from api.config import Settings
from api.db import session_scope
from api.evals import repository as evals
from api.fine_tuning import artifacts, repository
from api.fine_tuning.service import fine_tuned_model_name
from api.fine_tuning.status import QUEUED, RUNNING, SUCCEEDED, transition
from api.ids import new_id
from api.tables import EvalOutputItem, FineTuningCheckpoint
from tests.support.storage import to_store

METRICS = {"step": 4, "train_loss": 1.5, "train_mean_token_accuracy": 0.5}


def set_status(app: Any, job_id: str, *statuses: str) -> None:
    """Walk a job through `statuses` with the state machine, as the worker does."""
    with session_scope(app.state.sessionmaker) as session:
        job = repository.get_for_update(session, job_id)
        assert job is not None
        for status in statuses:
            if status == RUNNING and job.status != QUEUED:  # a job runs only from the queue
                transition(session, job, QUEUED, "validated")
            transition(session, job, status, f"to {status}")


def succeed_with_checkpoints(app: Any, job_id: str, steps: tuple[int, ...] = (4, 8)) -> list[str]:
    """Finish a job as the worker would, with one checkpoint per step in `steps` and their artifacts."""
    settings = app.state.settings
    set_status(app, job_id, RUNNING)
    # Files first, then the rows that make them visible: the worker's order.
    for step in steps:
        _fake_artifact(settings, artifacts.checkpoint_dir(settings, job_id, step))
    _fake_artifact(settings, artifacts.adapter_dir(settings, job_id))
    names = []
    with session_scope(app.state.sessionmaker) as session:
        job = repository.get_for_update(session, job_id)
        assert job is not None
        for step in steps:
            row: FineTuningCheckpoint = checkpoints.record(session, job, step, {**METRICS, "step": step})
            names.append(row.fine_tuned_model_checkpoint)
        job.fine_tuned_model = fine_tuned_model_name(job)
        transition(session, job, SUCCEEDED, "done")
    return names


def graded_eval_run(app: Any, client: Any) -> tuple[str, str, str]:
    """An eval, a run of it and one output item, recorded as the worker records one: their ids."""
    made = client.post(
        "/v1/evals",
        json={
            "data_source_config": {"type": "custom", "item_schema": {"type": "object"}},
            "testing_criteria": [
                {"type": "string_check", "name": "eq", "input": "a", "reference": "a", "operation": "eq"}
            ],
        },
    ).json()
    source = {"type": "file_content", "content": [{"item": {}}]}
    run = client.post(
        f"/v1/evals/{made['id']}/runs", json={"data_source": {"type": "jsonl", "source": source}}
    )
    run_id = run.json()["id"]
    with session_scope(app.state.sessionmaker) as session:
        row = evals.run_for_update(session, run_id)
        assert row is not None
        item = EvalOutputItem(
            id=new_id("outputitem_"),
            run_pk=row.pk,
            datasource_item_id=0,
            datasource_item={},
            sample={},
            results=[{"name": "eq", "type": "string_check", "score": 1.0, "passed": True}],
            status="pass",
            created_at=row.created_at,
        )
        session.add(item)
        return made["id"], run_id, item.id


def _fake_artifact(settings: Settings, directory: Path) -> None:
    # The bytes are not a real adapter: these tests are about who may fetch it, not what it holds.
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_bytes(b"artifact of " + directory.name.encode())
    to_store(settings, directory)  # on S3, into the bucket as the worker puts it
