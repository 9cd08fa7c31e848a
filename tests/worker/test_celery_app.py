"""The worker's Celery app is made when the worker starts, from the settings it is given; importing
the worker's modules reads no settings and makes no folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from api import queue
from api.config import Settings
from worker.celery_app import make_app


def test_importing_the_worker_reads_no_settings_and_makes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # Settings() would refuse this value: an import that read the settings would fail.
    env = {**os.environ, "TUNERY_DATA_DIR": str(data_dir), "TUNERY_LEASE_SECONDS": "not a number"}
    for modules in ("worker.tasks, worker.celery_app", "worker.celery_app, worker.tasks"):
        imported = subprocess.run(
            [sys.executable, "-c", f"import {modules}"], env=env, capture_output=True, text=True
        )
        assert imported.returncode == 0, imported.stderr
    assert not data_dir.exists()


def test_the_app_made_at_start_has_both_tasks_and_the_broker_of_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url=None)
    app = make_app(settings)
    assert {queue.VALIDATE_JOB, queue.RUN_JOB} <= set(app.tasks)
    assert app.conf.broker_url == "filesystem://"
    assert app.conf.broker_transport_options["data_folder_in"] == str(settings.broker_path / "queue")
    assert all((settings.broker_path / sub).is_dir() for sub in ("queue", "processed", "control"))
    assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1


def test_the_shared_config_makes_no_folders(tmp_path: Path) -> None:
    queue.celery_config(Settings(data_dir=tmp_path, broker_url=None))
    assert list(tmp_path.iterdir()) == []
