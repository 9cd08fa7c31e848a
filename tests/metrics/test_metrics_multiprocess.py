"""Two API processes sharing PROMETHEUS_MULTIPROC_DIR: a scrape of either counts the other's requests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.config import Settings
from tests.metrics.test_metrics_endpoint import samples
from tests.support.processes import service_env, stop
from tests.support.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.alone]
ADMIN_KEY = "tun-admin-multiprocess-0123456789"


def test_request_histograms_are_summed_across_processes(settings: Settings, tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    ports = [free_port(), free_port()]
    processes = []
    try:
        for port in ports:
            env = service_env(settings, "tun-e2e-test-key-0123456789", port)
            env.update(PROMETHEUS_MULTIPROC_DIR=str(shared), TUNERY_ADMIN_KEY=ADMIN_KEY)
            log = (tmp_path / f"api-{port}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "api.cli", "api"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        for port in ports:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / f"api-{port}.log").read_text()
                time.sleep(0.2)
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        for _ in range(20):
            assert httpx.get(f"{first}/healthz").status_code == 200
        assert httpx.get(f"{second}/healthz").status_code == 200
        scraped = samples(
            httpx.get(f"{second}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
        )
    finally:
        for process in processes:
            stop(process)
    healthz = frozenset({("route", "/healthz"), ("method", "GET"), ("status", "200")})
    # Twenty and a readiness poll from the first process, one and a poll from the second: the second
    # alone has seen about two.
    assert scraped["tunery_http_request_duration_seconds_count", healthz] >= 23
