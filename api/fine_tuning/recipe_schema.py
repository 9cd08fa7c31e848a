"""The `recipe` a job request may carry (Tunery's extension, `extra_body={"recipe": {...}}`): how to train.

Pure pydantic, importing nothing else from api/ (and nothing from worker/): the API validates a recipe
here, stores `RecipeIn(...).model_dump()` on the job row, and the trainer reads that dict back with
`worker.training.spec.Recipe.from_dict`. The defaults below are the trainer's defaults.

Fields that belong to one family of recipe types are refused on the others, naming the field: a
`lora_r` on an `ia3` job would otherwise be stored, shown back, and silently do nothing. In the dump,
such fields are null (they do not apply); every field that applies has its value, defaults filled in,
so a job is reproducible from its record.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

RecipeType = Literal[
    "lora", "qlora", "lora_int8", "dora", "ia3", "prefix_tuning", "prompt_tuning", "bitfit", "freeze", "full"
]
Method = Literal["supervised", "dpo", "classification"]
ModuleName = Annotated[str, StringConstraints(min_length=1, max_length=128)]

LORA_TYPES = ("lora", "qlora", "lora_int8", "dora")
# The fields that only some recipe types read, with those types and the default they get there.
PER_TYPE_FIELDS: dict[str, tuple[tuple[str, ...], object]] = {
    "lora_r": (LORA_TYPES, 8),
    "lora_alpha": (LORA_TYPES, 16),
    "lora_dropout": (LORA_TYPES, 0.05),
    "target_modules": ((*LORA_TYPES, "ia3"), "all-linear"),
    "num_virtual_tokens": (("prefix_tuning", "prompt_tuning"), 20),
    "trainable_layers": (("freeze",), 2),
}


class RecipeIn(BaseModel):
    """How to train: which weights learn (`type`) and the settings of the run."""

    model_config = ConfigDict(extra="forbid")

    type: RecipeType = Field(
        default="lora",
        description="lora | qlora (4-bit NF4 base) | lora_int8 (8-bit base) | dora | ia3 | prefix_tuning | "
        "prompt_tuning | bitfit (bias terms only) | freeze (top layers only) | full (every weight).",
    )
    # Per type (null where the type does not read them).
    lora_r: int | None = Field(default=None, ge=1, le=1024, description="LoRA rank (lora family).")
    lora_alpha: int | None = Field(
        default=None, ge=1, le=4096, description="LoRA scaling numerator, alpha / r (lora family)."
    )
    lora_dropout: float | None = Field(default=None, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: Literal["all-linear"] | Annotated[list[ModuleName], Field(min_length=1)] | None = Field(
        default=None,
        description="Layers that get adapters: 'all-linear' or module names (lora family, ia3; for ia3 "
        "'all-linear' means peft's per-architecture choice of keys, values and feed-forward output).",
    )
    num_virtual_tokens: int | None = Field(
        default=None, ge=1, le=512, description="Learned tokens before each example (prefix/prompt tuning)."
    )
    trainable_layers: int | None = Field(
        default=None, ge=0, le=1000, description="freeze: top blocks that train with the head; 0 = head only."
    )
    # Every type.
    max_seq_length: int = Field(default=1024, ge=16, le=131072, description="Longer examples are truncated.")
    packing: bool = Field(
        default=False, description="Pack examples into full sequences (padding-free, no cross-attention)."
    )
    gradient_checkpointing: bool = Field(default=True, description="Recompute activations: less memory.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto",
        description="auto: bf16 on a GPU that has it, fp32 on CPU. A half precision the machine lacks "
        "falls back to auto's choice with a warning event.",
    )
    lr_scheduler: Literal[
        "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"
    ] = "linear"
    warmup_ratio: float = Field(default=0.0, ge=0, le=0.5, description="Fraction of the steps that warm up.")
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    max_grad_norm: float = Field(default=1.0, ge=0, le=100, description="Gradient clipping; 0 turns it off.")
    train_on_inputs: bool = Field(
        default=False, description="Loss on every token, not only the assistant's (supervised)."
    )

    @field_validator(*PER_TYPE_FIELDS, mode="after")
    @classmethod
    def _applies_to_type(cls, value: object, info: ValidationInfo) -> object:
        recipe_type = info.data.get("type")
        field_name = info.field_name or ""
        types, _ = PER_TYPE_FIELDS[field_name]
        if value is not None and recipe_type is not None and recipe_type not in types:
            applies_to = ", ".join(types)
            raise ValueError(
                f"{field_name} does not apply to recipe type {recipe_type!r}; it applies to {applies_to}"
            )
        return value

    @model_validator(mode="after")
    def _fill_type_defaults(self) -> RecipeIn:
        for field_name, (types, default) in PER_TYPE_FIELDS.items():
            if self.type in types and getattr(self, field_name) is None:
                setattr(self, field_name, default)
        return self


# Base learning rates, before the job's learning_rate_multiplier. The fewer and the newer the weights
# that train, the larger the steps they need: LoRA's B matrices start at zero and are small, IA3's
# scales and soft prompts are a handful of values (their papers train at 3e-3 and 3e-2), while updating
# pretrained weights themselves (full, the top layers under freeze) needs small steps not to erase what
# the model knows. bitfit sits between: pretrained values, but few of them.
SUPERVISED_LEARNING_RATE = {
    "lora": 2e-4,
    "qlora": 2e-4,
    "lora_int8": 2e-4,
    "dora": 2e-4,
    "ia3": 3e-3,
    "prefix_tuning": 1e-2,
    "prompt_tuning": 3e-2,
    "bitfit": 5e-4,
    "freeze": 2e-5,
    "full": 1e-5,
}
# DPO starts from a model that already answers well and only shifts preferences between its own
# likely answers; at SFT rates it drifts from the reference and the loss collapses (TRL's default for
# full DPO is 1e-6). A tenth of the SFT rate.
DPO_FACTOR = 0.1
# Classification trains a new, randomly initialised head: it needs larger steps than the backbone
# (head-only freeze at 1e-3), and full fine-tuning of an encoder is classically done at 2e-5.
CLASSIFICATION_LEARNING_RATE = {**SUPERVISED_LEARNING_RATE, "freeze": 1e-3, "bitfit": 1e-3, "full": 2e-5}


def base_learning_rate(recipe_type: str, method: str) -> float:
    """The learning rate a recipe type trains at for a method, before the multiplier."""
    if recipe_type not in SUPERVISED_LEARNING_RATE:
        raise ValueError(f"unknown recipe type {recipe_type!r}")
    if method == "supervised":
        return SUPERVISED_LEARNING_RATE[recipe_type]
    if method == "dpo":
        return SUPERVISED_LEARNING_RATE[recipe_type] * DPO_FACTOR
    if method == "classification":
        return CLASSIFICATION_LEARNING_RATE[recipe_type]
    raise ValueError(f"unknown method {method!r}")
