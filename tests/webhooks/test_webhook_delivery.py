"""Deliveries: signed so that the official SDK's verifier accepts them, retried after failures with a
growing wait, recorded attempt by attempt, and never sent again once a receiver took the event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from openai import InvalidWebhookSignatureError, OpenAI
from sqlalchemy import select

from api.config import Settings
from api.db import make_engine, make_sessionmaker, session_scope
from api.files.storage import FileStorage
from api.models.store import ModelStore
from api.tables import WebhookAttempt, WebhookDelivery
from tests.conftest import TINY_MODEL
from tests.support.webhook_receiver import Receiver, webhook_receiver
from worker.reconciler import reconcile
from worker.runtime import Runtime
from worker.webhook_delivery import deliver, retry_delay

pytestmark = pytest.mark.integration

SDK = OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True, "webhook_retry_seconds": 0.01})


@pytest.fixture
def runtime(fast_settings: Settings) -> Iterator[Runtime]:
    engine = make_engine(fast_settings)
    yield Runtime(
        fast_settings,
        make_sessionmaker(engine, fast_settings),
        FileStorage(fast_settings.files_path),
        ModelStore(fast_settings.models_path),
    )
    engine.dispose()


@pytest.fixture
def api(api_key_for, fast_settings: Settings, tiny_model_dir) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    ModelStore(fast_settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    app, key = api_key_for(fast_settings)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def cancelled_job(api: TestClient, receiver: Receiver, tmp_path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Register the receiver, create a job and cancel it: (the job's id, the endpoint's secret)."""
    from tests.support.tiny_model import toy_chat_examples, write_jsonl

    secret = api.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["fine_tuning.job.cancelled"]}
    ).json()["secret"]
    path = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(8))
    with path.open("rb") as stream:
        file_id = api.post("/v1/files", files={"file": stream}, data={"purpose": "fine-tune"}).json()["id"]
    job = api.post("/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": file_id}).json()
    assert api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    return job["id"], secret


def the_delivery(runtime: Runtime) -> WebhookDelivery:
    with session_scope(runtime.sessions, writes=False) as session:
        return session.scalars(select(WebhookDelivery)).one()


def attempts(runtime: Runtime) -> list[WebhookAttempt]:
    with session_scope(runtime.sessions, writes=False) as session:
        return list(session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.pk)))


def deliver_when_due(runtime: Runtime, delivery_id: str) -> str:
    due = the_delivery(runtime).next_attempt_at
    assert due is not None
    time.sleep(max(0.0, due - time.time()))
    return deliver(runtime, delivery_id)


class TestDelivery:
    def test_the_sdk_verifier_accepts_the_event(self, api: TestClient, runtime: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
        with webhook_receiver() as receiver:
            job_id, secret = cancelled_job(api, receiver, tmp_path)
            delivery = the_delivery(runtime)
            assert deliver(runtime, delivery.id) == "delivered"
            (got,) = receiver.received
        event = SDK.webhooks.unwrap(got.body, got.headers, secret=secret)
        assert event.type == "fine_tuning.job.cancelled"
        assert event.data.id == job_id
        assert event.id.startswith("evt_") and event.id == got.headers["webhook-id"]
        assert json.loads(got.body)["object"] == "event"

    def test_a_tampered_body_is_refused_by_the_verifier(
        self, api: TestClient, runtime: Runtime, tmp_path
    ) -> None:  # type: ignore[no-untyped-def]
        with webhook_receiver() as receiver:
            _, secret = cancelled_job(api, receiver, tmp_path)
            deliver(runtime, the_delivery(runtime).id)
            (got,) = receiver.received
        tampered = got.body.replace(b"cancelled", b"succeeded")
        with pytest.raises(InvalidWebhookSignatureError):
            SDK.webhooks.unwrap(tampered, got.headers, secret=secret)
        with pytest.raises(InvalidWebhookSignatureError):
            SDK.webhooks.unwrap(got.body, got.headers, secret="whsec_" + "QUFB" * 8)

    def test_failing_twice_gets_it_on_the_third_try_and_never_again(
        self,
        api: TestClient,
        runtime: Runtime,
        tmp_path,  # type: ignore[no-untyped-def]
    ) -> None:
        with webhook_receiver(answers=[500, 503]) as receiver:
            _, secret = cancelled_job(api, receiver, tmp_path)
            delivery_id = the_delivery(runtime).id
            assert deliver(runtime, delivery_id) == "retrying"
            assert deliver(runtime, delivery_id) == "skipped"  # not due yet: the wait is respected
            assert deliver_when_due(runtime, delivery_id) == "retrying"
            assert deliver_when_due(runtime, delivery_id) == "delivered"
            assert deliver(runtime, delivery_id) == "skipped"  # a late duplicate message sends nothing
            assert reconcile(runtime)["webhooks"] == []
            assert [r.answered for r in receiver.received] == [500, 503, 200]
            ids = {r.headers["webhook-id"] for r in receiver.received}
            SDK.webhooks.unwrap(receiver.received[-1].body, receiver.received[-1].headers, secret=secret)
        assert len(ids) == 1  # one event id across retries: the receiver can tell it is the same event
        assert [a.status_code for a in attempts(runtime)] == [500, 503, 200]
        delivered = the_delivery(runtime)
        assert delivered.delivered_at is not None and delivered.next_attempt_at is None
        assert delivered.attempts == 3

    def test_no_answer_is_recorded_and_retried(self, api: TestClient, runtime: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
        with webhook_receiver() as receiver:
            cancelled_job(api, receiver, tmp_path)
        # The receiver is gone now: the connection is refused.
        delivery_id = the_delivery(runtime).id
        assert deliver(runtime, delivery_id) == "retrying"
        (attempt,) = attempts(runtime)
        assert attempt.status_code is None and "ConnectError" in (attempt.error or "")

    def test_a_url_that_became_private_is_refused_at_delivery(
        self,
        api: TestClient,
        runtime: Runtime,
        tmp_path,  # type: ignore[no-untyped-def]
    ) -> None:
        with webhook_receiver() as receiver:
            cancelled_job(api, receiver, tmp_path)
            strict = Runtime(
                runtime.settings.model_copy(update={"webhook_allow_private": False}),
                runtime.sessions,
                runtime.file_storage,
                runtime.model_store,
            )
            assert deliver(strict, the_delivery(runtime).id) == "retrying"
            assert receiver.received == []
        (attempt,) = attempts(runtime)
        assert (attempt.error or "").startswith("refused:")

    def test_given_up_after_the_retry_window(self, api: TestClient, runtime: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
        short = Runtime(
            runtime.settings.model_copy(update={"webhook_retry_window_seconds": 0}),
            runtime.sessions,
            runtime.file_storage,
            runtime.model_store,
        )
        with webhook_receiver(answers=[500]) as receiver:
            cancelled_job(api, receiver, tmp_path)
            assert deliver(short, the_delivery(runtime).id) == "given up"
        assert the_delivery(runtime).given_up_at is not None

    def test_a_lost_message_is_rung_again_by_the_reconciler(
        self,
        api: TestClient,
        runtime: Runtime,
        tmp_path,  # type: ignore[no-untyped-def]
    ) -> None:
        with webhook_receiver() as receiver:
            cancelled_job(api, receiver, tmp_path)
            delivery = the_delivery(runtime)
            with session_scope(runtime.sessions) as session:
                row = session.get(WebhookDelivery, delivery.pk)
                assert row is not None
                row.next_attempt_at = int(time.time()) - 120  # its message was sent long ago, and lost
            assert reconcile(runtime)["webhooks"] == [delivery.id]


def test_the_wait_doubles_up_to_its_cap(settings: Settings) -> None:
    tuned = settings.model_copy(update={"webhook_retry_seconds": 10, "webhook_retry_max_seconds": 60})
    assert [retry_delay(tuned, n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
