"""The models the embedded backend holds: each base model once, fine-tuned models on demand.

A fine-tuned model is what the trainer left in its artifact directory (worker/training/artifacts.py):
a PEFT adapter, or a whole model for full, freeze and bitfit, with the tokenizer of the run (the chat
template it trained with) and tunery.json. LoRA-family adapters of a causal model (lora, dora, qlora,
lora_int8) load into the one copy of their base as named peft adapters, so a hundred of them cost a
hundred adapters, not a hundred models. Other adapters (ia3, prefix and prompt tuning, classification
heads) and whole models get a model of their own: peft can't hold adapters of different types on one
model. Both kinds count toward `max_adapters`; the least recently used is unloaded past it.

Only the generation thread calls into a pool: no locks, and the active adapter is safe to switch.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from api.inference.schemas import BackendTarget
from api.models.store import ModelStore
from catalog.methods import DEFAULT_METHOD, METHODS
from worker.inference.prompts import stop_token_ids

RUN_RECORD_NAME = "tunery.json"  # what worker/training/artifacts.py writes beside every artifact


class ModelUnavailable(Exception):
    """The request names a model the backend can't serve (answered 404)."""


@dataclass
class Servable:
    """What one request generates (or classifies) with."""

    model: Any
    tokenizer: Any
    task: str  # "CAUSAL_LM" or "SEQ_CLS"
    stop_token_ids: list[int] = field(default_factory=list)
    context_length: int = 2048
    adapter_name: str | None = None
    """The peft adapter to activate; None: its adapters off (or none)."""
    shared: bool = False
    """On its base model's one copy (the base itself, or a LoRA adapter on it): it can share a batch
    with the base's other adapters."""

    @contextmanager
    def active(self) -> Iterator[Any]:
        """The model, with this servable's adapter the active one for the duration."""
        peft = self.model if hasattr(self.model, "peft_config") else None
        if peft is not None and self.adapter_name is not None:
            peft.set_adapter(self.adapter_name)
            yield peft
        else:
            with peft.disable_adapter() if peft is not None else nullcontext():
                yield self.model


@dataclass
class _Base:
    directory: Path
    model: Any  # the causal LM, a PeftModel once a LoRA adapter is loaded onto it
    tokenizer: Any
    adapters: set[str] = field(default_factory=set)


class ModelPool:
    def __init__(self, store: ModelStore, artifacts_root: Path, max_adapters: int, device: str | None = None):
        self.store = store
        self.artifacts_root = artifacts_root.resolve()
        self.max_adapters = max_adapters
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = (
            torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        )
        self._bases: dict[str, _Base] = {}
        self._tuned: OrderedDict[str, tuple[Servable, str | None]] = OrderedDict()  # dir -> (servable, base)
        self.loads = 0  # fine-tuned models loaded so far (evicted ones count again): what tests watch

    def get(self, model: str, target: BackendTarget | None) -> Servable:
        if target is None:
            return self._base_servable(model)
        if target.artifact_dir is None:
            return self._base_servable(target.base_model)
        artifact = self._checked_artifact(target.artifact_dir)
        key = str(artifact)
        if key in self._tuned:
            self._tuned.move_to_end(key)
            return self._tuned[key][0]
        while len(self._tuned) >= self.max_adapters:
            self._evict()
        servable, shared_base = self._load_tuned(target.base_model, artifact)
        self._tuned[key] = (servable, shared_base)
        self.loads += 1
        return servable

    def unload(self, artifact_dir: str) -> bool:
        """Drop a fine-tuned model (its model deleted); False when it was not loaded."""
        key = str(Path(artifact_dir).resolve())
        if key not in self._tuned:
            return False
        self._drop(key)
        return True

    def loaded(self) -> list[str]:
        """The artifact directories loaded now, least recently used first."""
        return list(self._tuned)

    def _checked_artifact(self, artifact_dir: str) -> Path:
        # The backend has no keys: the API decided who may use what. It still loads only artifacts of this
        # data directory, so a request that reaches it by mistake can't make it read any directory it names.
        path = Path(artifact_dir).resolve()
        if not path.is_relative_to(self.artifacts_root) or not (path / RUN_RECORD_NAME).is_file():
            raise ModelUnavailable(f"no fine-tuned model artifact at {artifact_dir}")
        return path

    def _base(self, model_id: str) -> _Base:
        if model_id not in self._bases:
            entry = self.store.get(model_id)
            if entry is None:
                raise ModelUnavailable(f"the base model {model_id!r} is not in the model store")
            model = self._placed(AutoModelForCausalLM.from_pretrained(entry.path, dtype=self.dtype))
            self._bases[model_id] = _Base(entry.path, model, AutoTokenizer.from_pretrained(entry.path))
        return self._bases[model_id]

    def _base_servable(self, model_id: str) -> Servable:
        base = self._base(model_id)
        return self._servable(base.model, base.tokenizer, "CAUSAL_LM", shared=True)

    def _load_tuned(self, base_id: str, artifact: Path) -> tuple[Servable, str | None]:
        record = json.loads((artifact / RUN_RECORD_NAME).read_text())
        tokenizer = AutoTokenizer.from_pretrained(artifact)
        task = METHODS[record.get("method") or DEFAULT_METHOD].task
        if record.get("artifact_format") == "model":
            model_class = AutoModelForSequenceClassification if task == "SEQ_CLS" else AutoModelForCausalLM
            model = self._placed(model_class.from_pretrained(artifact, dtype=self.dtype))
            return self._servable(model, tokenizer, task), None
        adapter_config = json.loads((artifact / "adapter_config.json").read_text())
        if task == "CAUSAL_LM" and adapter_config.get("peft_type") == "LORA":
            return self._load_shared_lora(base_id, artifact, tokenizer), base_id
        from peft import PeftModel

        entry = self.store.get(base_id)
        if entry is None:
            raise ModelUnavailable(f"the base model {base_id!r} is not in the model store")
        if task == "SEQ_CLS":
            # The new head's shape and label names are in the config saved beside the adapter.
            config = AutoConfig.from_pretrained(artifact)
            base = AutoModelForSequenceClassification.from_pretrained(
                entry.path,
                dtype=self.dtype,
                num_labels=len(config.id2label),
                id2label=config.id2label,
                label2id=config.label2id,
            )
        else:
            base = AutoModelForCausalLM.from_pretrained(entry.path, dtype=self.dtype)
        model = self._placed(PeftModel.from_pretrained(self._placed(base), artifact))
        return self._servable(model, tokenizer, task, adapter_name="default"), None

    def _load_shared_lora(self, base_id: str, artifact: Path, tokenizer: Any) -> Servable:
        from peft import PeftModel

        base = self._base(base_id)
        name = f"adapter-{self.loads}"  # unique among those loaded; never reused while loaded
        if hasattr(base.model, "peft_config"):
            base.model.load_adapter(artifact, adapter_name=name)
        else:
            base.model = PeftModel.from_pretrained(base.model, artifact, adapter_name=name)
        base.model.eval()
        base.adapters.add(name)
        return self._servable(base.model, tokenizer, "CAUSAL_LM", adapter_name=name, shared=True)

    def _evict(self) -> None:
        self._drop(next(iter(self._tuned)))

    def _drop(self, key: str) -> None:
        servable, base_id = self._tuned.pop(key)
        if base_id is not None and servable.adapter_name is not None:
            base = self._bases[base_id]
            base.adapters.discard(servable.adapter_name)
            if base.adapters:
                base.model.delete_adapter(servable.adapter_name)
            else:
                # The last adapter out: back to the plain model, as if none had ever been loaded.
                base.model = base.model.unload()
        del servable
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def _placed(self, model: Any) -> Any:
        return model.to(self.device).eval()

    def _servable(
        self, model: Any, tokenizer: Any, task: str, adapter_name: str | None = None, shared: bool = False
    ) -> Servable:
        config = getattr(model, "config", None)
        limits = [
            getattr(config, "max_position_embeddings", None),
            tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None,
        ]
        context = min((limit for limit in limits if limit), default=2048)
        stops = stop_token_ids(tokenizer, model) if task == "CAUSAL_LM" else []
        return Servable(model, tokenizer, task, stops, context, adapter_name, shared)
