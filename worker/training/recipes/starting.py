"""An adapter recipe's model: a new adapter, or the adapter of the earlier fine-tune the job trains on
from (the spec's `start_from`), loaded trainable so training goes on where that run ended."""

from __future__ import annotations

from typing import Any

from peft import PeftConfig, PeftModel, get_peft_model

from worker.training.spec import TrainingSpec


def adapter_model(model: Any, config: PeftConfig, spec: TrainingSpec) -> Any:
    start = spec.start_from
    if start is None or start.get("artifact_format") != "peft":
        return get_peft_model(model, config)
    # The saved adapter's own config (rank, alpha, targets) comes with it; job create checked that
    # the recipe asks for the same shape.
    return PeftModel.from_pretrained(model, start["directory"], is_trainable=True)
