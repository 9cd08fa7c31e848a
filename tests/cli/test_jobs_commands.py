"""`tunery jobs list` and `tunery jobs watch` as processes, against a live API on another "machine"
(its URL and key given by flags, nothing read from a shared data directory)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openai import OpenAI

from api.cli_jobs import progress_bar
from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.processes import live_service
from tests.support.tiny_model import toy_chat_examples, write_jsonl


@pytest.fixture
def backend() -> str:
    # the command talks HTTP; the database behind the API is not its subject: once, on the production one.
    return "postgres"


def remote_tunery(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNERY_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_progress_bar_shows_steps_loss_and_time_left() -> None:
    assert progress_bar(5, 10, 1.23456, 75, width=10) == "[#####.....] step 5/10  loss 1.2346  1:15 left"
    assert progress_bar(0, 0, None, None, width=4) == "[....] step 0/0"


@pytest.mark.e2e
@pytest.mark.slow
def test_watch_follows_a_job_to_its_model_and_list_shows_it(
    settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    with live_service(settings, tmp_path / "logs") as service:
        remote = ["--base-url", service.base_url, "--api-key", service.api_key]
        client = OpenAI(base_url=service.base_url, api_key=service.api_key)
        good = client.files.create(
            file=write_jsonl(tmp_path / "good.jsonl", toy_chat_examples(16)).open("rb"), purpose="fine-tune"
        )
        too_few = client.files.create(
            file=write_jsonl(tmp_path / "few.jsonl", toy_chat_examples(3)).open("rb"), purpose="fine-tune"
        )
        job = client.fine_tuning.jobs.create(
            model=TINY_MODEL, training_file=good.id, hyperparameters={"n_epochs": 2, "batch_size": 2}
        )
        watched = remote_tunery("jobs", "watch", job.id, "--interval", "0.3", *remote)
        assert watched.returncode == 0, watched.stdout + watched.stderr + service.log_tail()
        finished = client.fine_tuning.jobs.retrieve(job.id)
        assert watched.stdout.rstrip().endswith(f"succeeded: {finished.fine_tuned_model}")
        bars = [line for line in watched.stdout.splitlines() if line.startswith("[")]
        assert bars and re.match(r"\[#{30}\] step (\d+)/\1  loss", bars[-1]), watched.stdout  # the last step

        failing = client.fine_tuning.jobs.create(model=TINY_MODEL, training_file=too_few.id)
        watched = remote_tunery("jobs", "watch", failing.id, "--interval", "0.3", *remote)
        assert watched.returncode == 1
        error = client.fine_tuning.jobs.retrieve(failing.id).error
        assert error is not None and f"failed: {error.message}" in watched.stdout

        listed = remote_tunery("jobs", "list", *remote)
        assert listed.returncode == 0, listed.stderr
        rows = listed.stdout.splitlines()
        assert rows[1].split()[:2] == [failing.id, "failed"]  # newest first
        assert rows[2].split()[:2] == [job.id, "succeeded"] and finished.fine_tuned_model in rows[2]

        refused = remote_tunery(
            "jobs", "list", "--base-url", service.base_url, "--api-key", "tun-wrong-key-0123456789"
        )
        assert refused.returncode != 0 and "401" in refused.stderr
