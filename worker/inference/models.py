"""The models the embedded backend holds: each base model once, fine-tuned models on demand.

A fine-tuned model is what the trainer left in its artifact directory (worker/training/artifacts.py):
a PEFT adapter, or a whole model for full, freeze and bitfit, with the tokenizer of the run (the chat
template it trained with) and tunery.json. LoRA-family adapters of a causal model (lora, dora, qlora,
lora_int8) load into the one copy of their base as named peft adapters, so a hundred of them cost a
hundred adapters, not a hundred models. Other adapters (ia3, prefix and prompt tuning, classification
heads) and whole models get a model of their own: peft can't hold adapters of different types on one
model. Both kinds count toward `max_adapters`; the least recently used is unloaded past it.

Loading from disk happens on a loader thread (`prefetch`): a base model, or a fine-tuned model with a
model of its own, is loaded there while the generation thread keeps generating with what is loaded.
Whatever changes a model in use (a LoRA adapter attached to or removed from a shared base, an
eviction, the active adapter switched) stays on the generation thread, in `get` and `unload`. A lock
guards the dicts both threads touch.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
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


@dataclass
class _StagedLora:
    """A LoRA adapter read from disk, not yet attached to its base."""

    config: Any
    weights: dict[str, torch.Tensor]
    tokenizer: Any

    @classmethod
    def read(cls, artifact: Path, tokenizer: Any, device: str) -> _StagedLora:
        from peft import PeftConfig
        from peft.utils import load_peft_weights

        config = PeftConfig.from_pretrained(str(artifact))
        config.inference_mode = True
        return cls(config, load_peft_weights(str(artifact), device=device), tokenizer)


class ModelPool:
    def __init__(
        self,
        store: ModelStore,
        artifacts_root: Path,
        max_adapters: int,
        device: str | None = None,
        fetch: Callable[[Path], bool] | None = None,
    ):
        """`fetch`: puts an artifact the API names by its key (TUNERY_STORAGE_URL=s3://...) on this
        machine's disk, from the bucket, once; None when artifacts are on disk already."""
        self.store = store
        self.artifacts_root = artifacts_root.resolve()
        self.fetch = fetch
        self.max_adapters = max_adapters
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = (
            torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        )
        self._bases: dict[str, _Base] = {}
        self._tuned: OrderedDict[str, tuple[Servable, str | None]] = OrderedDict()  # dir -> (servable, base)
        # dir -> what `prefetch` read: a model of its own, or a LoRA adapter for `get` to attach
        self._staged: dict[str, Servable | _StagedLora] = {}
        self._lock = threading.RLock()
        self.loads = 0  # fine-tuned models loaded so far (evicted ones count again): what tests watch

    def ready(self, model: str, target: BackendTarget | None) -> bool:
        """Whether `get` would answer without loading anything slow from disk."""
        with self._lock:
            if target is None or target.artifact_dir is None:
                return (target.base_model if target else model) in self._bases
            key = str(self._path(target.artifact_dir))
            return key in self._tuned or key in self._staged

    def prefetch(self, model: str, target: BackendTarget | None) -> None:
        """Load from disk what `get` will need, off the generation thread: the base model, or a
        fine-tuned model with a model of its own (kept aside until `get` takes it in). A LoRA adapter of
        a shared base is attached by `get`, on the generation thread: only its base is loaded here."""
        if target is None or target.artifact_dir is None:
            self._base(target.base_model if target else model)
            return
        artifact = self._checked_artifact(target.artifact_dir)
        key = str(artifact)
        if self.ready(model, target):
            return
        record, tokenizer, task = self._read_artifact(artifact)
        staged: Servable | _StagedLora
        if self._is_shared_lora(artifact, record, task):
            self._base(target.base_model)
            staged = _StagedLora.read(artifact, tokenizer, self.device)
        else:
            staged = self._load_own(target.base_model, artifact, record, tokenizer, task)
        with self._lock:
            self._staged.setdefault(key, staged)

    def get(self, model: str, target: BackendTarget | None) -> Servable:
        if target is None:
            return self._base_servable(model)
        if target.artifact_dir is None:
            return self._base_servable(target.base_model)
        artifact = self._checked_artifact(target.artifact_dir)
        key = str(artifact)
        with self._lock:
            if key in self._tuned:
                self._tuned.move_to_end(key)
                return self._tuned[key][0]
            staged = self._staged.pop(key, None)
        while len(self._tuned) >= self.max_adapters:
            self._evict()
        if isinstance(staged, _StagedLora):
            servable, shared_base = self._attach_lora(target.base_model, staged), target.base_model
        elif staged is not None:
            servable, shared_base = staged, None
        else:
            servable, shared_base = self._load_tuned(target.base_model, artifact)
        with self._lock:
            self._tuned[key] = (servable, shared_base)
            self.loads += 1
        return servable

    def unload(self, artifact_dir: str) -> bool:
        """Drop a fine-tuned model (its model deleted); False when it was not loaded."""
        key = str(self._path(artifact_dir))
        with self._lock:
            self._staged.pop(key, None)
        if key not in self._tuned:
            return False
        self._drop(key)
        return True

    def loaded(self) -> list[str]:
        """The artifact directories loaded now, least recently used first."""
        with self._lock:
            return list(self._tuned)

    def _checked_artifact(self, artifact_dir: str) -> Path:
        # The backend has no keys: the API decided who may use what. It still loads only artifacts of this
        # data directory, so a request that reaches it by mistake can't make it read any directory it names.
        path = self._path(artifact_dir)
        if path.is_relative_to(self.artifacts_root) and self.fetch is not None:
            self.fetch(path)
        if not path.is_relative_to(self.artifacts_root) or not (path / RUN_RECORD_NAME).is_file():
            raise ModelUnavailable(f"no fine-tuned model artifact at {artifact_dir}")
        return path

    def _path(self, artifact_dir: str) -> Path:
        """An absolute directory, or an artifact's key in the store (artifacts/<job>/...: the API names
        it so when its data directory is not this machine's), as a path on this machine."""
        path = Path(artifact_dir)
        return (path if path.is_absolute() else self.artifacts_root.parent / path).resolve()

    def _base(self, model_id: str) -> _Base:
        with self._lock:
            if model_id in self._bases:
                return self._bases[model_id]
        entry = self.store.get(model_id)
        if entry is None:
            raise ModelUnavailable(f"the base model {model_id!r} is not in the model store")
        base = _Base(entry.path, self._load_base_model(entry.path), AutoTokenizer.from_pretrained(entry.path))
        with self._lock:
            return self._bases.setdefault(model_id, base)  # a load that lost a race is dropped

    def _load_base_model(self, path: Path) -> Any:
        """A base model from disk, placed: the slow part of a base's load."""
        return self._placed(AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype))

    def _base_servable(self, model_id: str) -> Servable:
        base = self._base(model_id)
        return self._servable(base.model, base.tokenizer, "CAUSAL_LM", shared=True)

    def _read_artifact(self, artifact: Path) -> tuple[dict[str, Any], Any, str]:
        record = json.loads((artifact / RUN_RECORD_NAME).read_text())
        return (
            record,
            AutoTokenizer.from_pretrained(artifact),
            METHODS[record.get("method") or DEFAULT_METHOD].task,
        )

    def _is_shared_lora(self, artifact: Path, record: dict[str, Any], task: str) -> bool:
        if record.get("artifact_format") == "model" or task != "CAUSAL_LM":
            return False
        adapter_config = json.loads((artifact / "adapter_config.json").read_text())
        return bool(adapter_config.get("peft_type") == "LORA")

    def _load_tuned(self, base_id: str, artifact: Path) -> tuple[Servable, str | None]:
        record, tokenizer, task = self._read_artifact(artifact)
        if self._is_shared_lora(artifact, record, task):
            return self._load_shared_lora(base_id, artifact, tokenizer), base_id
        return self._load_own(base_id, artifact, record, tokenizer, task), None

    def _load_own(
        self, base_id: str, artifact: Path, record: dict[str, Any], tokenizer: Any, task: str
    ) -> Servable:
        """A fine-tuned model with a model of its own: a whole model, or a non-LoRA adapter on a copy."""
        if record.get("artifact_format") == "model":
            model_class = AutoModelForSequenceClassification if task == "SEQ_CLS" else AutoModelForCausalLM
            model = self._placed(model_class.from_pretrained(artifact, dtype=self.dtype))
            return self._servable(model, tokenizer, task)
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
        return self._servable(model, tokenizer, task, adapter_name="default")

    def _load_shared_lora(self, base_id: str, artifact: Path, tokenizer: Any) -> Servable:
        return self._attach_lora(base_id, _StagedLora.read(artifact, tokenizer, self.device))

    def _attach_lora(self, base_id: str, staged: _StagedLora) -> Servable:
        """Add an adapter read beforehand to its shared base: on the generation thread, as it changes the
        model, but with nothing read from disk (prefetch read it on the loader thread)."""
        from peft import PeftModel
        from peft.utils import set_peft_model_state_dict

        base = self._base(base_id)
        name = f"adapter-{self.loads}"  # unique among those loaded; never reused while loaded
        if hasattr(base.model, "peft_config"):
            base.model.add_adapter(name, staged.config)
        else:
            base.model = PeftModel(base.model, staged.config, adapter_name=name)
        set_peft_model_state_dict(base.model, staged.weights, adapter_name=name)
        base.model.eval()
        base.adapters.add(name)
        return self._servable(base.model, staged.tokenizer, "CAUSAL_LM", adapter_name=name, shared=True)

    def _evict(self) -> None:
        self._drop(next(iter(self._tuned)))

    def _drop(self, key: str) -> None:
        with self._lock:
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
