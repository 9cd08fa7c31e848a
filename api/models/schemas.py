"""Model objects as the openai SDK types them (openai.types.Model)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelServing(BaseModel):
    """Tunery's extension on fine-tuned and checkpoint models: how to serve the model elsewhere."""

    vllm_lora: bool
    """Whether vLLM's LoRA support (--enable-lora, --lora-modules) loads the adapter download as it is."""
    reason: str | None
    """Why not, when it does not."""
    format: Literal["adapter", "merged"]
    """The download to serve it from: the adapter on its base, or the merged model on its own."""


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    serving: ModelServing | None = None
    """Tunery's extension, on `GET /v1/models/{model}` of a fine-tuned or checkpoint model."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool
