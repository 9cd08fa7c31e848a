"""The embedded backend in-process on the tiny model, and artifacts shaped as the trainer writes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from worker.inference.server import create_inference_app


@pytest.fixture(scope="module")
def backend_settings(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Settings:
    data_dir = tmp_path_factory.mktemp("inference-data")
    settings = Settings(data_dir=data_dir, inference_max_adapters=1, inference_max_queue=0)
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    return settings


@pytest.fixture(scope="module")
def server(backend_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_inference_app(backend_settings)) as client:
        yield client


def write_run_record(directory: Path, method: str, artifact_format: str) -> None:
    record = {"job_id": directory.parent.name, "method": method, "artifact_format": artifact_format}
    (directory / "tunery.json").write_text(json.dumps(record))


def random_lora_artifact(settings: Settings, base_dir: Path, job_id: str, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights: it changes what the base model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    directory = settings.artifacts_path / job_id / "adapter"
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(directory)
    write_run_record(directory, "supervised", "peft")
    return directory


def classifier_artifact(settings: Settings, base_dir: Path, job_id: str) -> Path:
    """A whole-model classification artifact (what full or freeze training leaves) with two labels."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    config = AutoConfig.from_pretrained(base_dir, num_labels=2, id2label={0: "sour", 1: "sweet"})
    config.label2id = {"sour": 0, "sweet": 1}
    torch.manual_seed(0)
    directory = settings.artifacts_path / job_id / "adapter"
    LlamaForSequenceClassification(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(directory)
    write_run_record(directory, "classification", "model")
    return directory
