"""The dashboard in a real browser over real processes: sign in, find the running job, watch its loss
curve grow, pause and resume it with the buttons, and see a killed worker turn lost.

One backend only: the pages' queries run on both in test_dashboard_pages.py; this is about the browser.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from openai import OpenAI

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.dashboard.browser import chromium, wait_until
from tests.support.processes import Cluster, trainer_pids
from tests.support.tiny_model import toy_chat_examples, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.alone]
ADMIN_KEY = "tun-admin-dashboard-test-0123456789"
# Where the job page's screenshot is kept after the run (git-ignored), named in the README.
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def points(driver) -> int:  # type: ignore[no-untyped-def]
    return int(driver.find_element("id", "loss-curve").get_attribute("data-points") or 0)


def status(driver) -> str:  # type: ignore[no-untyped-def]
    return driver.find_element("id", "job-status").text


def test_an_operator_follows_pauses_and_resumes_a_job(
    settings: Settings, backend: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    if backend != "sqlite":
        pytest.skip("the browser test runs on one backend")
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    env = {"TUNERY_ADMIN_KEY": ADMIN_KEY, "TUNERY_LEASE_SECONDS": "3", "TUNERY_HEARTBEAT_SECONDS": "0.5"}
    cluster = Cluster(settings, tmp_path / "logs", extra_env=env)
    try:
        cluster.start_api()
        worker = cluster.start_worker()
        client = OpenAI(base_url=cluster.base_url, api_key=cluster.api_key)
        dataset = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(200))
        uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model=TINY_MODEL,
            training_file=uploaded.id,
            suffix="browser",
            hyperparameters={"n_epochs": 3, "batch_size": 1},
        )
        dashboard = cluster.base_url.removesuffix("/v1") + "/dashboard"
        with chromium() as driver:
            driver.get(dashboard)
            driver.find_element("id", "key").send_keys(cluster.api_key)  # a member key: refused
            driver.find_element("id", "sign-in").click()
            # The refusal is a new page: wait for it, or the admin key goes into the old page's field.
            refusal = wait_until(
                driver, lambda d: d.find_element("id", "sign-in-error").text, 30, "the sign-in refusal"
            )
            assert "not an admin key" in refusal
            driver.find_element("id", "key").send_keys(ADMIN_KEY)
            driver.find_element("id", "sign-in").click()

            row = f'tr[data-job="{job.id}"] .status'
            wait_until(
                driver, lambda d: d.find_element("css selector", row).text == "running", 180, "running"
            )
            driver.find_element("link text", job.id).click()

            wait_until(driver, lambda d: points(d) >= 2, 60, "loss points")
            first = points(driver)
            wait_until(driver, lambda d: points(d) > first, 60, "more loss points")

            driver.find_element("id", "pause").click()
            wait_until(driver, lambda d: status(d) == "paused", 30, "paused")
            events = lambda d: d.find_element("id", "events").text  # noqa: E731
            wait_until(driver, lambda d: "Paused " in events(d), 60, "the trainer to stop")
            paused_at = points(driver)
            assert driver.find_element("id", "resume").is_enabled()

            driver.find_element("id", "resume").click()
            wait_until(driver, lambda d: status(d) == "running", 120, "running again")
            wait_until(driver, lambda d: points(d) > paused_at + 2, 90, "steps after the resume")
            assert "resumed" in events(driver)
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(tmp_path / "dashboard-job.png"))
            shutil.copyfile(tmp_path / "dashboard-job.png", ARTIFACTS / "dashboard-job.png")

            driver.find_element("id", "nav-workers").click()
            state = lambda d: d.find_element("css selector", "#workers tbody tr .state").text  # noqa: E731
            wait_until(driver, lambda d: state(d) == "active", 30, "an active worker")
            assert job.id in driver.find_element("id", "workers").text  # the job it trains

            driver.back()
            driver.find_element("id", "cancel").click()
            wait_until(driver, lambda d: status(d) == "cancelled", 30, "cancelled")
            wait_until(driver, lambda d: not trainer_pids(job.id), 60, "the trainer to stop")

            driver.find_element("id", "nav-workers").click()
            os.kill(worker.pid, signal.SIGKILL)
            wait_until(driver, lambda d: state(d) == "lost", 30, "the killed worker shown as lost")
            driver.save_screenshot(str(ARTIFACTS / "dashboard-workers.png"))
    finally:
        cluster.stop_all()
        for pid in trainer_pids(job.id) if "job" in locals() else []:
            os.kill(pid, signal.SIGKILL)
