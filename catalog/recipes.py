"""Recipe types and the recipe: which weights learn, and the settings of the run. Defined once.

`RECIPE_TYPES` is the registry: one row per type, with the trainer's family module that builds it
(worker/training/recipes/{family}.py), the fields of its own that it reads, its base learning
rate and the kind of artifact it leaves. `Recipe` is the one definition of every field, its
range and its default. The API validates a request's recipe through its view of it
(api/fine_tuning/recipe_schema.py: fields of other types refused and stored as null); the trainer
reads the stored dict back with `Recipe.from_dict`. Adding a type is a row here and a family file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

RecipeTypeName = Literal[
    "lora", "qlora", "lora_int8", "dora", "ia3", "prefix_tuning", "prompt_tuning", "bitfit", "freeze", "full"
]
ArtifactKind = Literal["peft", "model"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
LrScheduler = Literal[
    "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"
]
Distributed = Literal["none", "ddp", "fsdp"]
ModuleName = Annotated[str, StringConstraints(min_length=1, max_length=128)]

LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")


@dataclass(frozen=True)
class RecipeType:
    name: str
    family: str
    """The trainer's module that builds it: worker/training/recipes/{family}.py."""
    artifact: ArtifactKind
    """"peft": an adapter over the base; "model": a whole model directory."""
    fields: tuple[str, ...]
    """The per-type fields of Recipe that this type reads (the shared ones every type reads)."""
    learning_rate: float
    """The base rate that learning_rate_multiplier scales, for supervised training."""
    head_learning_rate: float | None = None
    """Classification's rate where it differs: a new random head needs larger steps than the
    pretrained weights it sits on."""
    needs_biases: bool = False
    """Trains bias terms only: a base without biases has nothing to train."""
    summary: str = ""


# The fewer and the newer the weights that train, the larger the steps they need: LoRA's B matrices
# start at zero and are small, IA3's scales and soft prompts are a handful of values (their papers
# train at 3e-3 and 3e-2), while updating pretrained weights themselves (full, the top layers under
# freeze) needs small steps not to erase what the model knows. bitfit sits between.
_ROWS = (
    RecipeType("lora", "lora", "peft", LORA_FIELDS, 2e-4, summary="low-rank matrices beside linear layers"),
    RecipeType("qlora", "lora", "peft", LORA_FIELDS, 2e-4, summary="LoRA over a 4-bit NF4 base"),
    RecipeType("lora_int8", "lora", "peft", LORA_FIELDS, 2e-4, summary="LoRA over an 8-bit base"),
    RecipeType("dora", "lora", "peft", LORA_FIELDS, 2e-4, summary="LoRA plus a learned magnitude"),
    RecipeType("ia3", "ia3", "peft", ("target_modules",), 3e-3, summary="scaling vectors"),
    RecipeType(
        "prefix_tuning", "prompt", "peft", ("num_virtual_tokens",), 1e-2, summary="learned keys and values"
    ),
    RecipeType(
        "prompt_tuning", "prompt", "peft", ("num_virtual_tokens",), 3e-2, summary="learned input embeddings"
    ),
    RecipeType("bitfit", "bitfit", "model", (), 5e-4, 1e-3, needs_biases=True, summary="bias terms only"),
    RecipeType("freeze", "freeze", "model", ("trainable_layers",), 2e-5, 1e-3, summary="the top blocks"),
    RecipeType("full", "full", "model", (), 1e-5, 2e-5, summary="every weight"),
)
RECIPE_TYPES: dict[str, RecipeType] = {row.name: row for row in _ROWS}
RECIPE_TYPE_NAMES: tuple[str, ...] = tuple(RECIPE_TYPES)
assert get_args(RecipeTypeName) == RECIPE_TYPE_NAMES, "RecipeTypeName and the rows must name the same types"


def recipe_type(name: str) -> RecipeType:
    try:
        return RECIPE_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe type {name!r}; known: {', '.join(RECIPE_TYPE_NAMES)}") from None


class Recipe(BaseModel):
    """How to train: the adapter or weight subset that learns (`type`), and the run's settings.

    Every field has a value here; those that `type` does not read are ignored (the API refuses
    them when given explicitly and stores them as null, so a record never claims them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: RecipeTypeName = Field(
        default="lora",
        description="lora | qlora (4-bit NF4 base) | lora_int8 (8-bit base) | dora | ia3 | prefix_tuning | "
        "prompt_tuning | bitfit (bias terms only) | freeze (top layers only) | full (every weight).",
    )
    # Per type: RecipeType.fields says which types read each.
    lora_r: int = Field(default=8, ge=1, le=1024, description="LoRA rank (lora family).")
    lora_alpha: int = Field(default=16, ge=1, le=4096, description="LoRA scaling numerator, alpha / r.")
    lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: Literal["all-linear"] | Annotated[list[ModuleName], Field(min_length=1)] = Field(
        default="all-linear",
        description="Layers that get adapters: 'all-linear' or module names (lora family, ia3; for ia3 "
        "'all-linear' means peft's per-architecture choice of keys, values and feed-forward output).",
    )
    num_virtual_tokens: int = Field(
        default=20, ge=1, le=512, description="Learned tokens before each example (prefix/prompt tuning)."
    )
    trainable_layers: int = Field(
        default=2, ge=0, le=1000, description="freeze: top blocks that train with the head; 0 = head only."
    )
    # Every type.
    max_seq_length: int = Field(default=1024, ge=16, le=131072, description="Longer examples are truncated.")
    packing: bool = Field(
        default=False,
        description="Pack several examples into each row of max_seq_length (fewer steps). Without it, "
        "batches are still padding-free where that is faster: same examples per step, no compute on padding.",
    )
    group_by_length: bool = Field(
        default=False,
        description="Batch examples of similar length together: less padding, but a different order of "
        "examples (supervised, classification).",
    )
    gradient_checkpointing: Literal["auto"] | bool = Field(
        default="auto",
        description="Recompute activations in the backward pass: less memory, about a third more compute. "
        "auto: only where memory needs it (off on CPU; on a GPU whose free memory is short for the model).",
    )
    compile: bool = Field(
        default=False,
        description="torch.compile the model: faster steps after a warm-up that the job's events report.",
    )
    precision: Precision = Field(
        default="auto",
        description="auto: bf16 on a GPU that has it, fp32 on CPU. A half precision the machine lacks "
        "falls back to auto's choice with a warning event.",
    )
    distributed: Distributed = Field(
        default="none",
        description="none: one process | ddp: a full copy per GPU, gradients averaged | fsdp: parameters, "
        "gradients and optimizer state sharded across the GPUs (FSDP2), for models one GPU can't hold.",
    )
    num_gpus: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes (one per GPU) on each node; more than 1 needs ddp or fsdp.",
    )
    num_nodes: int = Field(
        default=1, ge=1, le=64, description="Machines the job trains across (ddp or fsdp)."
    )
    fsdp_cpu_offload: bool = Field(
        default=False, description="fsdp: keep sharded parameters and optimizer state in CPU memory."
    )
    lr_scheduler: LrScheduler = "linear"
    warmup_ratio: float = Field(default=0.0, ge=0, le=0.5, description="Fraction of the steps that warm up.")
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    max_grad_norm: float = Field(default=1.0, ge=0, le=100, description="Gradient clipping; 0 turns it off.")
    train_on_inputs: bool = Field(
        default=False, description="Loss on every token, not only the assistant's (supervised)."
    )

    @model_validator(mode="after")
    def _distribution_is_consistent(self) -> Recipe:
        problem = distribution_problem(
            self.distributed, self.num_gpus, self.num_nodes, self.fsdp_cpu_offload, self.type
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def processes(self) -> int:
        """The trainer processes of the run: one per GPU on every node."""
        return self.num_gpus * self.num_nodes

    @property
    def kind(self) -> RecipeType:
        return RECIPE_TYPES[self.type]

    @property
    def is_peft(self) -> bool:
        """Whether the artifact is a PEFT adapter (else a whole model directory)."""
        return self.kind.artifact == "peft"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        """Build from a stored recipe (the API's dump): nulls mean "the default".

        Unknown keys are refused rather than dropped: a misspelt field that silently trained with
        the default would be worse than a failed job. Errors name the field as `recipe.<field>`.
        """
        unknown = sorted(set(raw) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"invalid recipe: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**{key: value for key, value in raw.items() if value is not None})
        except ValidationError as error:
            raise ValueError("invalid recipe: " + "; ".join(_problems(error))) from None


def distribution_problem(
    distributed: str, num_gpus: int, num_nodes: int, cpu_offload: bool, recipe_type: str | None = None
) -> str | None:
    """Why these distribution settings can't train together, or None (shared with the API's view)."""
    if distributed == "none" and (num_gpus > 1 or num_nodes > 1):
        return "num_gpus and num_nodes above 1 need distributed 'ddp' or 'fsdp'"
    if cpu_offload and distributed != "fsdp":
        return "fsdp_cpu_offload needs distributed 'fsdp'"
    if distributed == "fsdp" and recipe_type == "lora_int8":
        # FSDP shards float tensors; 4-bit weights can be stored in one (qlora), int8 ones can't.
        return "recipe type 'lora_int8' can't be sharded by fsdp (its 8-bit weights are integers); use qlora"
    return None


def per_type_fields() -> dict[str, tuple[str, ...]]:
    """Each per-type field of Recipe, with the types that read it."""
    readers: dict[str, list[str]] = {}
    for row in _ROWS:
        for name in row.fields:
            readers.setdefault(name, []).append(row.name)
    return {name: tuple(types) for name, types in readers.items()}


PER_TYPE_FIELDS = per_type_fields()


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        where = ".".join(["recipe", *(str(part) for part in detail["loc"])])
        choices = (detail.get("ctx") or {}).get("expected")
        if detail["type"] == "literal_error" and choices:
            problems.append(f"{where} must be one of {choices.replace(chr(39), '')}, not {detail['input']!r}")
        else:
            problems.append(f"{where}: {detail['msg'].removeprefix('Value error, ')}")
    return problems
