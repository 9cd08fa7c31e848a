"""The estimate's formulas on a synthetic Llama-7B shape (no files, no torch): the figures a reader
can check by hand, and the decision for gradient_checkpointing "auto"."""

from __future__ import annotations

import pytest

from catalog.estimate import ModelShape, Tensor, count_parameters, estimate_memory, needs_checkpointing
from catalog.recipes import Recipe

GIB = 2**30


def llama(layers: int = 32, hidden: int = 4096, inner: int = 11008, vocab: int = 32000) -> ModelShape:
    tensors = [
        Tensor("model.embed_tokens.weight", (vocab, hidden)),
        Tensor("lm_head.weight", (vocab, hidden)),
    ]
    for i in range(layers):
        block = f"model.layers.{i}."
        for name, shape in {
            "self_attn.q_proj": (hidden, hidden),
            "self_attn.k_proj": (hidden, hidden),
            "self_attn.v_proj": (hidden, hidden),
            "self_attn.o_proj": (hidden, hidden),
            "mlp.gate_proj": (inner, hidden),
            "mlp.up_proj": (inner, hidden),
            "mlp.down_proj": (hidden, inner),
        }.items():
            tensors.append(Tensor(block + name + ".weight", shape))
        tensors += [Tensor(block + "input_layernorm.weight", (hidden,))]
        tensors += [Tensor(block + "post_attention_layernorm.weight", (hidden,))]
    tensors.append(Tensor("model.norm.weight", (hidden,)))
    config = {
        "model_type": "llama",
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "intermediate_size": inner,
        "num_attention_heads": 32,
        "vocab_size": vocab,
    }
    return ModelShape.read(config, tensors)


def test_a_7b_llama_has_its_published_parameter_count() -> None:
    assert count_parameters(Recipe(type="full"), llama()).total == pytest.approx(6.74e9, rel=0.01)


def test_lora_r8_on_every_linear_layer() -> None:
    counts = count_parameters(Recipe(type="lora", lora_r=8), llama())
    per_layer = 8 * (4 * (4096 + 4096) + 2 * (4096 + 11008) + (11008 + 4096))
    assert counts.trainable == 32 * per_layer


def test_full_fine_tuning_of_7b_needs_16_bytes_a_parameter_before_activations() -> None:
    memory = estimate_memory(Recipe(type="full"), llama(), precision="bf16", batch_size=1)
    n = count_parameters(Recipe(type="full"), llama()).total
    assert memory.parameters_bytes + memory.gradients_bytes + memory.optimizer_bytes == 16 * n


def test_fsdp_divides_the_sharded_state_by_the_processes() -> None:
    one = estimate_memory(Recipe(type="full"), llama(), precision="bf16", batch_size=1)
    eight = estimate_memory(
        Recipe(type="full", distributed="fsdp", num_gpus=8), llama(), precision="bf16", batch_size=1
    )
    assert eight.optimizer_bytes == one.optimizer_bytes // 8
    assert eight.total_bytes_per_gpu < one.total_bytes_per_gpu / 4


def test_qlora_stores_the_base_in_about_a_quarter_of_lora() -> None:
    lora = estimate_memory(Recipe(type="lora"), llama(), precision="bf16", batch_size=1)
    qlora = estimate_memory(Recipe(type="qlora"), llama(), precision="bf16", batch_size=1)
    assert qlora.parameters_bytes < lora.parameters_bytes * 0.35
    # 6.48e9 block weights in NF4 (~0.516 bytes), embeddings and head (262e6) in fp32 as peft's
    # k-bit preparation leaves them, 20e6 adapter weights in fp32: 4.47e9 bytes.
    assert qlora.parameters_bytes / GIB == pytest.approx(4.16, abs=0.05)


def test_checkpointing_cuts_activations_and_auto_turns_it_on_only_when_needed() -> None:
    recipe = Recipe(type="lora", max_seq_length=4096)
    shape = llama()
    kept = estimate_memory(recipe, shape, precision="bf16", batch_size=4, gradient_checkpointing=False)
    recomputed = estimate_memory(recipe, shape, precision="bf16", batch_size=4, gradient_checkpointing=True)
    assert recomputed.activations_bytes < kept.activations_bytes / 10

    big_enough = kept.total_bytes_per_gpu + GIB
    too_small = kept.total_bytes_per_gpu - GIB
    assert not needs_checkpointing(recipe, shape, precision="bf16", batch_size=4, gpu_memory_bytes=big_enough)
    assert needs_checkpointing(recipe, shape, precision="bf16", batch_size=4, gpu_memory_bytes=too_small)
    # A CPU run has no GPU memory to fit: checkpointing stays off.
    assert not needs_checkpointing(recipe, shape, precision="bf16", batch_size=4, gpu_memory_bytes=None)
