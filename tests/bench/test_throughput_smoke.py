"""bench/throughput.py at a tiny size (the tiny random model, a few conversations, one round), so
that the benchmark cannot rot unnoticed: both arms train the same tokens and agree on the loss."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny_model import build_tiny_chat_model

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_throughput_benchmark_runs_both_arms_on_the_same_tokens(tmp_path: Path) -> None:
    model_dir = build_tiny_chat_model(tmp_path / "tiny")
    command = [
        sys.executable,
        str(REPO_ROOT / "bench" / "throughput.py"),
        "--model-dir",
        str(model_dir),
        "--conversations",
        "8",
        "--max-length",
        "64",
        "--rounds",
        "1",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output

    rounds = re.findall(r"round 1 (\w+) .* final loss ([\d.]+) .*\((\d+) tokens, (\d+) steps", output)
    assert {arm for arm, *_ in rounds} == {"tunery", "plain"}, output
    (_, tunery_loss, tunery_tokens, tunery_steps), (_, plain_loss, plain_tokens, plain_steps) = rounds
    # Same examples, same batches: the same tokens and steps, and the same loss up to float noise.
    assert (tunery_tokens, tunery_steps) == (plain_tokens, plain_steps) == ("462", "2")
    assert float(tunery_loss) == pytest.approx(float(plain_loss), abs=1e-2)
    assert re.search(r"^tunery / plain: [\d.]+x$", output, re.M), output
