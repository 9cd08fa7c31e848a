"""The reconciler: the database is the truth, so jobs whose messages or workers were lost move on."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from api import clock
from api.config import Settings
from api.queue import TRAINING_QUEUE, VALIDATION_QUEUE
from api.tables import FineTuningJob, FineTuningJobEvent
from tests.api.test_jobs import queued_job_ids
from tests.worker.test_jobs import create_job, events
from worker.jobs.validate import validate_job
from worker.reconciler import GRACE_SECONDS, reconcile
from worker.runtime import Runtime


def empty_the_broker(settings: Settings) -> None:
    """What a restarted Redis without persistence (or a lost broker volume) leaves behind."""
    if settings.broker_url:
        redis.Redis.from_url(settings.broker_url).flushdb()
    else:
        for message in (settings.broker_path / "queue").glob("*.msg"):
            message.unlink()


def age(runtime: Runtime, job_id: str, **columns) -> None:  # type: ignore[no-untyped-def]
    """Make the job's history, and its newest message, older than the reconciler's grace period, and
    set `columns`."""
    with runtime.sessions.begin() as session:
        pk = session.query(FineTuningJob.pk).filter(FineTuningJob.id == job_id).scalar()
        old = clock.now() - GRACE_SECONDS - 5
        session.execute(
            update(FineTuningJobEvent).where(FineTuningJobEvent.job_pk == pk).values(created_at=old)
        )
        session.execute(
            update(FineTuningJob).where(FineTuningJob.pk == pk).values(enqueued_at=old, **columns)
        )


def test_a_queued_job_whose_message_was_lost_is_enqueued_again(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    job_id = create_job(client, training_file)
    validate_job(runtime, job_id)
    assert queued_job_ids(settings, TRAINING_QUEUE) == [job_id]
    assert reconcile(runtime)["enqueued"] == []  # its message is there: nothing to do
    empty_the_broker(settings)
    age(runtime, job_id)
    assert reconcile(runtime)["enqueued"] == [job_id]
    assert queued_job_ids(settings, TRAINING_QUEUE) == [job_id]
    assert reconcile(runtime)["enqueued"] == []  # and only once


def test_a_validating_job_whose_message_was_lost_is_validated(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    job_id = create_job(client, training_file)
    assert reconcile(runtime)["revalidated"] == []  # just created: its message may be in flight
    empty_the_broker(settings)
    age(runtime, job_id)
    assert reconcile(runtime)["revalidated"] == [job_id]
    assert queued_job_ids(settings, VALIDATION_QUEUE) == [job_id]


def test_a_running_job_of_a_dead_worker_is_queued_again_then_failed_after_max_attempts(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    job_id = create_job(client, training_file)
    validate_job(runtime, job_id)
    expired = clock.now() - 1
    age(runtime, job_id, status="running", lease_owner="dead:1:x", lease_expires_at=expired, attempts=1)
    assert reconcile(runtime)["requeued"] == [job_id]
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "queued"
    assert "Worker lost; the job is queued again to resume from the start" in events(client, job_id)
    assert job_id in queued_job_ids(settings, TRAINING_QUEUE)

    age(runtime, job_id, status="running", lease_owner="dead:2:y", lease_expires_at=expired, attempts=3)
    assert reconcile(runtime)["failed"] == [job_id]
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "too_many_attempts"


def test_a_live_lease_is_left_alone(client: TestClient, runtime: Runtime, training_file: str) -> None:
    job_id = create_job(client, training_file)
    validate_job(runtime, job_id)
    age(runtime, job_id, status="running", lease_owner="alive:1:z", lease_expires_at=clock.now() + 60)
    done = reconcile(runtime)
    assert job_id not in done["requeued"] + done["enqueued"]
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "running"


def test_scratch_of_finished_jobs_is_swept_and_live_ones_kept(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    cancelled = create_job(client, training_file)
    client.post(f"/v1/fine_tuning/jobs/{cancelled}/cancel")
    live = create_job(client, training_file)
    for job_id in (cancelled, live, "ftjob-not-yet-committed"):
        (settings.jobs_path / job_id / "output").mkdir(parents=True)
    assert reconcile(runtime)["swept"] == [cancelled]
    assert not (settings.jobs_path / cancelled).exists()
    assert (settings.jobs_path / live).is_dir() and (settings.jobs_path / "ftjob-not-yet-committed").is_dir()


def test_a_message_younger_than_the_grace_period_is_trusted(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    """The reconciler reads the row, never the broker: an empty broker alone triggers nothing."""
    job_id = create_job(client, training_file)
    validate_job(runtime, job_id)
    empty_the_broker(settings)
    assert reconcile(runtime)["enqueued"] == []


def test_a_job_being_validated_is_left_to_its_worker(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    job_id = create_job(client, training_file)
    empty_the_broker(settings)
    age(runtime, job_id, lease_owner="validator:1:v", lease_expires_at=clock.now() + 60)
    assert reconcile(runtime)["revalidated"] == []
    age(runtime, job_id, lease_expires_at=clock.now() - 1)  # the validator died
    assert reconcile(runtime)["revalidated"] == [job_id]


def test_every_enqueue_is_recorded_on_the_row(
    client: TestClient, runtime: Runtime, training_file: str
) -> None:
    def just_enqueued() -> bool:
        with runtime.sessions() as session:
            at = session.query(FineTuningJob.enqueued_at).filter(FineTuningJob.id == job_id).scalar()
        return at is not None and at >= clock.now() - 2

    job_id = create_job(client, training_file)
    assert just_enqueued()  # by the API's create, for validation
    age(runtime, job_id)
    validate_job(runtime, job_id)
    assert just_enqueued()  # by the worker's validation, for training
    client.post(f"/v1/fine_tuning/jobs/{job_id}/pause")
    age(runtime, job_id)
    client.post(f"/v1/fine_tuning/jobs/{job_id}/resume")
    assert just_enqueued()  # by the API's resume, for training again


def test_a_cancelled_job_keeps_its_directory_while_its_worker_still_holds_it(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    """Cancel ends the job at once; its worker then stops the trainer, in the job's directory, under
    its lease. Sweeping the directory meanwhile took the trainer's log from under the worker."""
    job_id = create_job(client, training_file)
    validate_job(runtime, job_id)
    age(runtime, job_id, status="running", lease_owner="alive:1:z", lease_expires_at=clock.now() + 60)
    client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
    (settings.jobs_path / job_id / "output").mkdir(parents=True)
    assert job_id not in reconcile(runtime)["swept"]
    assert (settings.jobs_path / job_id).is_dir()
    age(runtime, job_id, lease_owner=None, lease_expires_at=None)  # the worker let go
    assert reconcile(runtime)["swept"] == [job_id]
    assert not (settings.jobs_path / job_id).exists()
