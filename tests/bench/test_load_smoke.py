"""bench/load.py at a tiny size, so that the benchmark cannot rot unnoticed: it must set up its own
API and the baseline app, drive both with a few clients and an open loop, and find no errors and no
lost jobs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "backend_args",
    [pytest.param(["--sqlite"], id="sqlite"), pytest.param([], id="postgres", marks=pytest.mark.integration)],
)
def test_load_benchmark_reports_no_errors_and_no_lost_jobs(backend_args: list[str]) -> None:
    command = [
        sys.executable,
        str(REPO_ROOT / "bench" / "load.py"),
        *backend_args,
        "--clients",
        "5",
        "--duration",
        "2",
        "--baseline-duration",
        "1",
        "--rounds",
        "1",
        "--rate",
        "20",
        "--open-duration",
        "1",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=180)
    output = completed.stdout + completed.stderr

    assert completed.returncode == 0, output
    summary = re.search(
        r"^errors (\d+); rate limited \(429\) \d+; lost jobs (\d+); unverified jobs (\d+)$", output, re.M
    )
    assert summary is not None, output
    assert summary.groups() == ("0", "0", "0"), output
    created = re.search(r"^jobs created (\d+);", output, re.M)
    assert created is not None and int(created.group(1)) > 0, output
    assert "x the 1-client baseline" in output, output
    ratio = re.search(r"baseline app ([\d.]+) req/s = ([\d.]+)x the baseline app", output)
    assert ratio is not None and float(ratio.group(1)) > 0, output
    for operation in ("create", "list", "retrieve"):  # the open loop's table
        assert re.search(rf"^{operation} +\d+ +[\d.]+ +[\d.]+ +\d+ +(yes|no)", output, re.M), output
