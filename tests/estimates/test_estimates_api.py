"""POST /v1/fine_tuning/estimates over the real app: counts from the safetensors headers, memory per
term and precision, tokens of a training file, and each live GPU pool's fit and duration."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors import safe_open

from tests.conftest import TINY_MODEL
from tests.estimates.pools import GIB, register_worker


def estimate(client: TestClient, **fields):  # type: ignore[no-untyped-def]
    return client.post("/v1/fine_tuning/estimates", json={"model": TINY_MODEL, **fields})


def numel_on_disk(model_dir: Path) -> int:
    total = 0
    with safe_open(str(model_dir / "model.safetensors"), "pt") as weights:
        for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
            n = 1
            for size in weights.get_slice(name).get_shape():
                n *= size
            total += n
    return total


def test_full_fine_tuning_trains_every_parameter_of_the_checkpoint(client, tiny_model_dir) -> None:
    response = estimate(client, recipe={"type": "full"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "fine_tuning.estimate"
    assert body["total_parameters"] == numel_on_disk(tiny_model_dir)
    assert body["trainable_parameters"] == body["total_parameters"]
    memory = body["memory"]
    # fp32 weights, fp32 gradients, AdamW's two fp32 moments.
    assert memory["parameters_bytes"] == 4 * body["total_parameters"]
    assert memory["gradients_bytes"] == 4 * body["trainable_parameters"]
    assert memory["optimizer_bytes"] == 8 * body["trainable_parameters"]
    assert memory["total_bytes_per_gpu"] == sum(
        memory[key] for key in ("parameters_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes")
    )
    assert [row["precision"] for row in body["by_precision"]] == ["bf16", "fp16", "fp32"]
    assert body["tokens"] is None and body["pools"] == []


def test_lora_trains_a_small_share_and_checkpointing_and_fsdp_cut_memory(client) -> None:
    lora = estimate(client, recipe={"type": "lora", "gradient_checkpointing": False}).json()
    checkpointed = estimate(client, recipe={"type": "lora", "gradient_checkpointing": True}).json()
    sharded = estimate(client, recipe={"type": "full", "distributed": "fsdp", "num_gpus": 2}).json()
    single = estimate(client, recipe={"type": "full"}).json()

    assert 0 < lora["trainable_parameters"] < lora["total_parameters"] / 2
    assert checkpointed["memory"]["activations_bytes"] < lora["memory"]["activations_bytes"]
    assert sharded["memory"]["optimizer_bytes"] == single["memory"]["optimizer_bytes"] // 2
    assert sharded["num_gpus"] == 2


def test_a_training_file_gives_tokens_per_epoch(client, training_file) -> None:
    body = estimate(client, training_file=training_file, hyperparameters={"n_epochs": 2}).json()

    assert body["n_examples"] == 16
    assert body["tokens_counted_by"] == "tokenizer"
    # Each toy example is a system prompt, a question and a one-word answer: tens of tokens.
    assert 16 * 10 < body["tokens"] < 16 * 100
    assert body["n_epochs"] == 2


def test_each_live_gpu_pool_says_whether_the_job_fits_and_how_long_it_takes(
    app, client, training_file
) -> None:
    register_worker(app.state.sessionmaker, "small:1", "small", 1, 1 * 2**20)
    register_worker(app.state.sessionmaker, "big:1", "big", 2, 80 * GIB)

    body = estimate(client, training_file=training_file, recipe={"type": "lora"}).json()

    pools = {pool["pool"]: pool for pool in body["pools"]}
    assert pools["small"]["fits"] is False
    assert pools["big"]["fits"] is True
    assert pools["big"]["gpu_count"] == 2 and pools["big"]["gpu_memory_bytes"] == 80 * GIB
    assert pools["big"]["tokens_per_second_source"] == "default"
    expected = body["tokens"] * body["n_epochs"] / pools["big"]["tokens_per_second"]
    assert pools["big"]["estimated_duration_seconds"] == pytest.approx(expected, abs=1)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"recipe": {"num_gpus": 2}}, "recipe"),
        ({"recipe": {"fsdp_cpu_offload": True, "distributed": "ddp", "num_gpus": 2}}, "recipe"),
        ({"training_file": "file-nope"}, "training_file"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, fields, param) -> None:
    response = estimate(client, **fields)

    assert response.status_code in (400, 404), response.text
    error = response.json()["error"]
    assert error["param"] is None or error["param"].startswith(param)
    assert error["message"]
