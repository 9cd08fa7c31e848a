from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before transformers is imported by a test: the hub is never needed, and must never be asked.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.support.tiny_model import build_tiny_chat_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The tiny random chat Llama, built once for the whole training suite."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def biased_model_dir(tmp_path_factory) -> Path:
    """The tiny model with a bias on every projection: what bitfit trains."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-biased-model"), with_biases=True)
