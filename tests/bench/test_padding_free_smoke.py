"""bench/padding_free.py at a tiny size (the tiny random model, a few comparisons and texts, one round),
so that the benchmark cannot rot unnoticed: both arms train on the same batches to the same losses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny_model import build_tiny_chat_model

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_padding_free_benchmark_runs_both_arms_to_the_same_losses(tmp_path: Path) -> None:
    model_dir = build_tiny_chat_model(tmp_path / "tiny")
    command = [sys.executable, str(REPO_ROOT / "bench" / "padding_free.py"), "--model-dir", str(model_dir)]
    command += ["--comparisons", "8", "--texts", "8", "--max-length", "64", "--rounds", "1"]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output

    for method in ("dpo", "classification"):
        assert re.search(rf"^{method}: 2 batches of 4, \d+ real tokens in \d+ padded positions", output, re.M)
        assert re.search(rf"^  {method} padding-free / padded: [\d.]+x$", output, re.M), output
    rounds = re.findall(r"round 1 (padded|padding-free) .* first loss ([\d.]+)\s+last loss ([\d.]+)", output)
    assert [arm for arm, *_ in rounds] == ["padded", "padding-free"] * 2, output
    for padded, flat in (rounds[0:2], rounds[2:4]):
        assert float(flat[1]) == pytest.approx(float(padded[1]), abs=1e-3)
        assert float(flat[2]) == pytest.approx(float(padded[2]), abs=1e-3)
