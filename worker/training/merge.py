"""The merged export: a base model with a PEFT adapter merged into its weights, saved as a plain
safetensors model directory (with the adapter's tokenizer and chat template) that `transformers` and
vLLM load without PEFT or Tunery. A classification adapter merges into a sequence classifier whose
head and label names are the adapter's (`AutoModelForSequenceClassification` loads it).

The merge runs in a floating-point dtype on the unquantized base (the model store keeps the base
unquantized), also for QLoRA and int8 adapters: their LoRA weights are ordinary tensors. What is saved
is checked before it is offered: the saved directory is loaded again and its logits on CHECK_PROMPT are
compared with the adapter's (base + adapter, unmerged, same dtype); past the dtype's tolerance the
export is refused. The figure goes into the export's tunery.json either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

RUN_RECORD_NAME = "tunery.json"
CHECK_PROMPT = "Tunery checks a merged export on this sentence: the quick brown fox jumps over the lazy dog."
# Max abs difference of logits allowed between the merged model and base + adapter, by dtype. Merging
# changes the order of the additions (W + BA instead of Wx + BAx): in fp32 that is rounding noise;
# in half precision each merged weight is rounded once more, which moves logits by up to a few 0.01.
TOLERANCE = {torch.float32: 1e-3, torch.float16: 5e-2, torch.bfloat16: 2.5e-1}
STAGES = ("load", "merge", "save", "check")


class MergeCheckFailed(Exception):
    """The merged model does not give the adapter's logits: not to be offered."""

    def __init__(self, max_abs_diff: float, tolerance: float) -> None:
        super().__init__(
            f"the merged model's logits differ from the adapter's by up to {max_abs_diff:.3g} "
            f"(tolerance {tolerance:g})"
        )
        self.max_abs_diff = max_abs_diff
        self.tolerance = tolerance


@dataclass(frozen=True)
class MergeReport:
    dtype: str
    max_abs_diff: float
    tolerance: float


def merge_dtype(base_dir: Path) -> torch.dtype:
    """The base's own floating-point dtype (config.json's torch_dtype); fp32 if it names none."""
    config = json.loads((base_dir / "config.json").read_text())
    name = config.get("torch_dtype") or config.get("dtype")
    dtype = getattr(torch, str(name), None) if name else None
    return dtype if dtype in TOLERANCE else torch.float32


def merge_adapter(
    adapter_dir: Path, base_dir: Path, out_dir: Path, on_stage: Callable[[str], None] | None = None
) -> MergeReport:
    """Merge the adapter of `adapter_dir` into the base of `base_dir`, save it into `out_dir` (a fresh
    staging directory) and check it. Raises MergeCheckFailed, leaving `out_dir` for the caller to
    remove."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    stage = on_stage or (lambda name: None)
    dtype = merge_dtype(base_dir)
    stage("load")
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    prompt = tokenizer(CHECK_PROMPT, return_tensors="pt")
    model_class, head = _model_class(adapter_dir)
    base = model_class.from_pretrained(base_dir, torch_dtype=dtype, **head)
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    expected = _logits(model, prompt)
    stage("merge")
    merged = model.merge_and_unload()
    stage("save")
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    del model, merged, base
    stage("check")
    saved = model_class.from_pretrained(out_dir, torch_dtype=dtype)
    saved.eval()
    max_abs_diff = float((_logits(saved, prompt) - expected).abs().max())
    report = MergeReport(str(dtype).removeprefix("torch."), max_abs_diff, TOLERANCE[dtype])
    _write_record(adapter_dir, out_dir, report)
    if max_abs_diff > report.tolerance:
        raise MergeCheckFailed(max_abs_diff, report.tolerance)
    return report


def _model_class(adapter_dir: Path) -> tuple[Any, dict[str, Any]]:
    """A causal LM, or for a classification adapter (peft's task_type SEQ_CLS) a sequence classifier
    with the head the adapter trained: its labels are in the config saved beside the adapter."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if adapter_config.get("task_type") != "SEQ_CLS":
        return AutoModelForCausalLM, {}
    config = AutoConfig.from_pretrained(adapter_dir)
    head = {"num_labels": len(config.id2label), "id2label": config.id2label, "label2id": config.label2id}
    return AutoModelForSequenceClassification, head


def _logits(model: Any, prompt: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(**prompt).logits.float()


def _write_record(adapter_dir: Path, out_dir: Path, report: MergeReport) -> None:
    """The adapter's run record, marked as a merged export, with the check's figure."""
    try:
        record = json.loads((adapter_dir / RUN_RECORD_NAME).read_text())
    except (OSError, ValueError):
        record = {}
    record["artifact_format"] = "model"
    record["export"] = {
        "format": "merged",
        "dtype": report.dtype,
        "check": {
            "prompt": CHECK_PROMPT,
            "max_abs_logit_diff": report.max_abs_diff,
            "tolerance": report.tolerance,
            "passed": report.max_abs_diff <= report.tolerance,
        },
    }
    (out_dir / RUN_RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
