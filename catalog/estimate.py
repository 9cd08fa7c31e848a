"""What a training run needs in memory, from the model's shape alone: no torch, no weights loaded.

The input is what a base model directory says about itself without being loaded: config.json and
the safetensors headers (every tensor's name, shape and dtype). From those the parameter counts of
every recipe type are exact: LoRA adds r * (in + out) per targeted linear layer, DoRA a magnitude
per output, IA3 one vector per targeted layer, prompt tuning num_virtual_tokens * hidden, prefix
tuning that per layer for keys and values; full trains every weight, freeze the top blocks and what
follows them, bitfit the biases.

Bytes per GPU, per term (the trainer's real layout, worker/training/recipes/):
- parameters: frozen base weights in the run's compute dtype (adapter recipes), or fp32 (recipes
  that update base weights keep them in fp32); qlora stores block linears as NF4 with double
  quantization (~0.516 bytes a weight) and the rest in fp32 (peft's k-bit preparation casts them),
  lora_int8 as int8 with an fp32 scale per row; trained weights are fp32.
- gradients: fp32, for trainable weights only. optimizer: AdamW's two fp32 moments per trainable
  weight. fsdp divides all three by the number of processes (and with CPU offload keeps them off the
  GPU) but gathers one block at a time unsharded in the compute dtype; ddp keeps its gradient
  buckets beside the gradients.
- activations, per token of the micro-batch (batch_size * max_seq_length): per layer, what the
  backward pass keeps of attention and the MLP (about 6h + 3kv + 4i values in the compute dtype,
  plus the fp32 inputs of the two RMSNorms), the LoRA dropout's copy of each targeted layer's input;
  with gradient checkpointing only each layer's input (h values) and one layer recomputed at a time.
  Attention scores are not stored (SDPA/flash attention). logits: vocab values in the compute
  dtype, their fp32 copy for the loss and its gradient. accelerate's estimate counts none of these.
The figures leave out the CUDA context and allocator slack (a few hundred MB a GPU).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from catalog.recipes import Recipe

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
# bitsandbytes NF4 with double quantization: 4 bits a weight, an 8-bit absmax per 64 weights and an
# fp32 scale per 256 absmaxes.
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
# The precisions a GPU run may use ("auto" is bf16 on a GPU that has it).
GPU_PRECISIONS = ("bf16", "fp16", "fp32")
# peft's default IA3 targets per architecture ("all-linear"): keys, values, feed-forward output.
IA3_DEFAULTS = {
    "gpt2": (("c_attn", "mlp.c_proj"), ("mlp.c_proj",)),
    "bert": (("key", "value", "output.dense"), ("output.dense",)),
}
IA3_DEFAULT = (("k_proj", "v_proj", "down_proj"), ("down_proj",))
_BLOCK = re.compile(r"^(?P<prefix>.*?\.(?:layers|h|layer|blocks))\.(?P<index>\d+)\.")
_EMBEDDING_NAMES = ("embed", "wte", "wpe", "word_embeddings", "position_embeddings", "token_type")
_HEAD_NAMES = ("lm_head.", "score.", "classifier.")


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "F32"

    @property
    def numel(self) -> int:
        n = 1
        for size in self.shape:
            n *= size
        return n

    @property
    def block(self) -> int | None:
        """The index of the transformer block it belongs to, None outside the blocks."""
        match = _BLOCK.match(self.name)
        return int(match.group("index")) if match else None

    @property
    def is_linear(self) -> bool:
        """A linear layer's weight inside a block (what peft's "all-linear" targets)."""
        return self.block is not None and self.name.endswith(".weight") and len(self.shape) == 2

    @property
    def is_embedding(self) -> bool:
        return self.block is None and any(part in self.name for part in _EMBEDDING_NAMES)


@dataclass(frozen=True)
class ModelShape:
    """A base model as its config and safetensors headers describe it."""

    model_type: str
    num_layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tensors: tuple[Tensor, ...]

    @classmethod
    def read(
        cls, config: Mapping[str, Any], tensors: Iterable[Tensor], task: str = "CAUSAL_LM"
    ) -> ModelShape:
        """From config.json and the headers. A classifier (SEQ_CLS) gets a new two-label head in
        place of the LM head (the labels are known only once the training file is read). A tied LM
        head is saved once, as the embeddings, and is the same tensor at run time: counted once."""
        hidden = int(config.get("hidden_size") or config.get("n_embd") or config.get("d_model") or 0)
        heads = int(config.get("num_attention_heads") or config.get("n_head") or 1)
        listed = [tensor for tensor in tensors if not tensor.name.startswith("lm_head.") or task != "SEQ_CLS"]
        if task == "SEQ_CLS" and not any(t.name.startswith(("score.", "classifier.")) for t in listed):
            listed.append(Tensor("score.weight", (2, hidden)))
        return cls(
            model_type=str(config.get("model_type", "")),
            num_layers=int(config.get("num_hidden_layers") or config.get("n_layer") or 0),
            hidden=hidden,
            intermediate=int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            vocab=int(config.get("vocab_size") or 0),
            tensors=tuple(listed),
        )

    @property
    def head_dim(self) -> int:
        return self.hidden // max(self.heads, 1)

    @property
    def total(self) -> int:
        return sum(tensor.numel for tensor in self.tensors)

    def largest_block(self) -> int:
        sizes: dict[int, int] = {}
        for tensor in self.tensors:
            if tensor.block is not None:
                sizes[tensor.block] = sizes.get(tensor.block, 0) + tensor.numel
        return max(sizes.values(), default=0)


@dataclass(frozen=True)
class Parameters:
    """Counts of the run's weights by how they are kept."""

    base: int
    """Weights of the base model."""
    trainable_base: int
    """Of those, the ones that train (full, freeze, bitfit)."""
    added: int
    """Weights the recipe adds (adapters, soft prompts), all trainable."""
    quantized: int
    """Frozen base weights stored in 4 or 8 bits (qlora, lora_int8)."""
    quantized_rows: int
    """Output rows of the int8 layers, each with an fp32 scale."""
    targeted_inputs: int
    """Sum of the input widths of the layers LoRA wraps (its dropout copies each input)."""

    @property
    def trainable(self) -> int:
        return self.trainable_base + self.added

    @property
    def total(self) -> int:
        return self.base + self.added


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU for one run, by term."""

    parameters_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    logits_bytes: int

    @property
    def total_bytes_per_gpu(self) -> int:
        return (
            self.parameters_bytes
            + self.gradients_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.logits_bytes
        )


def _targets(recipe: Recipe, shape: ModelShape) -> list[Tensor]:
    """The linear weights the recipe's adapters wrap, as peft matches target_modules."""
    linears = [tensor for tensor in shape.tensors if tensor.is_linear]
    if recipe.type == "ia3" and recipe.target_modules == "all-linear":
        names = IA3_DEFAULTS.get(shape.model_type, IA3_DEFAULT)[0]
    elif recipe.target_modules == "all-linear":
        return linears
    else:
        names = tuple(recipe.target_modules)
    # peft matches a name against the module path's trailing segments.
    return [t for t in linears if any(t.name[: -len(".weight")].endswith(name) for name in names)]


def count_parameters(recipe: Recipe, shape: ModelShape) -> Parameters:
    kind = recipe.type
    base = shape.total
    trainable_base = added = quantized = quantized_rows = targeted_inputs = 0
    targets: list[Tensor] = []
    if kind in ("lora", "qlora", "lora_int8", "dora"):
        targets = _targets(recipe, shape)
        for tensor in targets:
            out_features, in_features = tensor.shape
            added += recipe.lora_r * (in_features + out_features) + (out_features if kind == "dora" else 0)
            targeted_inputs += in_features
        if kind in ("qlora", "lora_int8"):
            # bitsandbytes quantizes the linear layers of the blocks; the head stays as it is.
            quantized = sum(t.numel for t in shape.tensors if t.is_linear)
            quantized_rows = sum(t.shape[0] for t in shape.tensors if t.is_linear)
        if recipe.lora_dropout == 0:
            targeted_inputs = 0
    elif kind == "ia3":
        feedforward = (
            IA3_DEFAULTS.get(shape.model_type, IA3_DEFAULT)[1]
            if recipe.target_modules == "all-linear"
            else ()
        )
        for tensor in _targets(recipe, shape):
            out_features, in_features = tensor.shape
            is_ff = any(tensor.name[: -len(".weight")].endswith(name) for name in feedforward)
            added += in_features if is_ff else out_features
    elif kind == "prompt_tuning":
        added = recipe.num_virtual_tokens * shape.hidden
    elif kind == "prefix_tuning":
        # One key and one value vector per virtual token and layer (of the kv heads' width).
        added = recipe.num_virtual_tokens * shape.num_layers * 2 * shape.head_dim * shape.kv_heads
    elif kind == "bitfit":
        trainable_base = sum(t.numel for t in shape.tensors if t.name.endswith(".bias") or _is_head(t))
        trainable_base -= sum(t.numel for t in shape.tensors if _is_head(t) and not _is_new_head(t))
    elif kind == "freeze":
        first = shape.num_layers - recipe.trainable_layers
        trainable_base = sum(
            t.numel
            for t in shape.tensors
            if (t.block is not None and t.block >= first) or (t.block is None and not t.is_embedding)
        )
    else:  # full
        trainable_base = base
    return Parameters(base, trainable_base, added, quantized, quantized_rows, targeted_inputs)


def _is_head(tensor: Tensor) -> bool:
    return tensor.name.startswith(_HEAD_NAMES)


def _is_new_head(tensor: Tensor) -> bool:
    return tensor.name.startswith(("score.", "classifier."))


def updates_base_weights(recipe: Recipe) -> bool:
    return recipe.type in ("full", "freeze", "bitfit")


def estimate_memory(
    recipe: Recipe,
    shape: ModelShape,
    *,
    precision: str,
    batch_size: int,
    gradient_checkpointing: bool | None = None,
) -> Memory:
    """Bytes per GPU for `recipe` on `shape` in `precision` (bf16, fp16 or fp32)."""
    counts = count_parameters(recipe, shape)
    compute = DTYPE_BYTES[precision]
    checkpointing = (
        recipe.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    )
    if recipe.type == "prefix_tuning":
        checkpointing = False  # the trainer turns it off: checkpointed layers drop the prefix
    frozen = counts.base - counts.trainable_base
    if updates_base_weights(recipe):
        base_bytes = 4.0 * counts.base
    elif recipe.type == "qlora":
        base_bytes = NF4_BYTES * counts.quantized + 4.0 * (frozen - counts.quantized)
    elif recipe.type == "lora_int8":
        base_bytes = counts.quantized + 4.0 * counts.quantized_rows + compute * (frozen - counts.quantized)
    else:
        base_bytes = float(compute * frozen)
    parameters = base_bytes + 4.0 * counts.added
    gradients = 4.0 * counts.trainable
    optimizer = 8.0 * counts.trainable

    processes = recipe.processes
    if recipe.distributed == "fsdp":
        # Sharded state; the block being computed (and the next, prefetched) is gathered whole.
        gathered = 2.0 * shape.largest_block() * compute
        share = 0.0 if recipe.fsdp_cpu_offload else 1.0 / processes
        parameters = parameters * share + gathered
        gradients *= share
        optimizer *= share
    elif recipe.distributed == "ddp":
        gradients *= 2  # the all-reduce buckets hold a second copy

    tokens = batch_size * recipe.max_seq_length
    h, kv, inner = shape.hidden, shape.kv_heads * shape.head_dim, shape.intermediate
    full_layer = compute * (6 * h + 3 * kv + 4 * inner) + 2 * 4 * h
    lora_inputs = compute * counts.targeted_inputs / max(shape.num_layers, 1)
    per_layer = full_layer + lora_inputs
    if checkpointing:
        activations_per_token = compute * h * shape.num_layers + per_layer
    else:
        activations_per_token = per_layer * shape.num_layers
    logits_per_token = shape.vocab * (compute + (4 if compute != 4 else 0) + 4)
    return Memory(
        parameters_bytes=int(parameters),
        gradients_bytes=int(gradients),
        optimizer_bytes=int(optimizer),
        activations_bytes=int(activations_per_token * tokens),
        logits_bytes=int(logits_per_token * tokens),
    )


def fits(memory: Memory, gpu_memory_bytes: int) -> bool:
    return memory.total_bytes_per_gpu <= gpu_memory_bytes


def needs_checkpointing(
    recipe: Recipe, shape: ModelShape, *, precision: str, batch_size: int, gpu_memory_bytes: int | None
) -> bool:
    """For gradient_checkpointing "auto": on only when the run would not fit its GPUs without it
    (it costs about a third more compute). No known GPU memory (a CPU run): off."""
    if gpu_memory_bytes is None:
        return False
    without = estimate_memory(
        recipe, shape, precision=precision, batch_size=batch_size, gradient_checkpointing=False
    )
    return not fits(without, gpu_memory_bytes)
