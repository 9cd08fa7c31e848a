"""bench/random_model.py: a real model's tokenizer and architecture with seeded random weights, the
model the GPU check trains where no weights can be fetched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.support.tiny_model import build_tiny_chat_model

REPO_ROOT = Path(__file__).resolve().parents[2]


def make(like: Path, out: Path, *shape: str) -> dict:
    command = [sys.executable, str(REPO_ROOT / "bench" / "random_model.py"), "--like", str(like)]
    done = subprocess.run(
        [*command, "--out", str(out), *shape], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_shape_is_the_one_asked_for_and_the_tokenizer_comes_along(tmp_path: Path) -> None:
    like = build_tiny_chat_model(tmp_path / "tiny")
    made = make(like, tmp_path / "wide", "--hidden-size", "64", "--layers", "3", "--heads", "4")
    config = json.loads((tmp_path / "wide" / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (64, 3, 4)
    assert config["head_dim"] == 16
    weights = load_file(tmp_path / "wide" / "model.safetensors")
    assert made["parameters"] == sum(t.numel() for t in weights.values())
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    tokenizer_files = {p.name for p in like.iterdir() if p.name.startswith("tokenizer")}
    assert tokenizer_files and tokenizer_files <= {p.name for p in (tmp_path / "wide").iterdir()}


def test_one_seed_gives_the_same_weights_and_another_does_not(tmp_path: Path) -> None:
    like = build_tiny_chat_model(tmp_path / "tiny")
    make(like, tmp_path / "a")
    make(like, tmp_path / "b")
    make(like, tmp_path / "c", "--seed", "1")
    a, b, c = (load_file(tmp_path / name / "model.safetensors") for name in "abc")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not all(torch.equal(a[name], c[name]) for name in a)
