"""The API's doorbell (api/queue.py) builds Celery's result backend once per process, not once per
thread: building one scans every installed package's entry points, and the API sends from many
threadpool threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from api import queue
from api.config import Settings


def test_sends_from_new_threads_build_no_new_result_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.app import backends

    settings = Settings(data_dir=tmp_path)
    built: list[str] = []
    by_url = backends.by_url

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(threading.current_thread().name)
        return by_url(*args, **kwargs)

    monkeypatch.setattr(backends, "by_url", counted)
    queue.enqueue(settings, queue.VALIDATE_JOB, "ftjob-first")
    for n in range(4):
        sender = threading.Thread(target=queue.enqueue, args=(settings, queue.VALIDATE_JOB, f"ftjob-{n}"))
        sender.start()
        sender.join()

    assert len(built) <= 1, built
    assert len(list((settings.broker_path / "queue").iterdir())) == 5  # and every message went out
