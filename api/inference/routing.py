"""Which inference backend answers for a model (TUNERY_INFERENCE_BACKENDS), and how it is asked.

The embedded backend serves everything. A vLLM server serves what is listed for it: a base model and
the LoRA fine-tunes of that base (registered with vLLM as adapters on first use), or a fine-tuned model
listed by its own name, which that server serves as a whole model. What vLLM can't take as an adapter
(full, freeze and bitfit fine-tunes, DoRA and other adapter types, classifiers) stays embedded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from api.config import Settings
from api.inference.backend import InferenceBackend
from api.inference.vllm import LoraAdapter, VllmBackend
from api.storage import store_of

RUN_RECORD_NAME = "tunery.json"  # what the trainer writes beside every artifact


@dataclass(frozen=True)
class Route:
    vllm_url: str | None
    """None: the embedded backend."""
    adapter: LoraAdapter | None = None
    """The LoRA adapter to register with vLLM; None: vLLM's served model."""


def route(settings: Settings, name: str, base_model: str, artifact_dir: str | None, task: str) -> Route:
    """Where `name` (resolved to `base_model` and `artifact_dir`) goes. Reads the artifact's files."""
    if task != "generate":
        return Route(None)  # vLLM's OpenAI server has no /v1/classifications
    own = settings.inference_backends.get(name)
    if own is not None:
        return Route(settings.vllm_url_for(name))
    url = settings.vllm_url_for(base_model)
    if url is None:
        return Route(None)
    if artifact_dir is None:
        return Route(url)
    if store_of(settings).remote:
        return Route(None)  # vLLM reads adapters at paths on its disk; the embedded backend fetches them
    if not is_plain_lora(Path(artifact_dir)):
        return Route(None)
    return Route(url, LoraAdapter(name=name, path=artifact_dir))


def is_plain_lora(artifact: Path) -> bool:
    """A LoRA adapter vLLM can load: peft's LORA type, without DoRA (vLLM has no DoRA kernels)."""
    try:
        record = json.loads((artifact / RUN_RECORD_NAME).read_text())
        config = json.loads((artifact / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        record.get("artifact_format") == "peft"
        and config.get("peft_type") == "LORA"
        and not config.get("use_dora")
        and config.get("task_type") in (None, "CAUSAL_LM")
    )


class Backends:
    """The backends the API forwards to: the embedded one, and a client per vLLM server."""

    def __init__(self, settings: Settings) -> None:
        self.embedded = InferenceBackend(settings.inference_base_url)
        self.vllm: dict[str, VllmBackend] = {}

    def vllm_at(self, url: str) -> VllmBackend:
        if url not in self.vllm:
            self.vllm[url] = VllmBackend(url)
        return self.vllm[url]

    async def forward(
        self, request: Request, where: Route, path: str, payload: dict[str, Any], stream: bool
    ) -> Response:
        if where.vllm_url is None:
            return await self.embedded.forward(request, path, payload, stream)
        return await self.vllm_at(where.vllm_url).forward(request, path, payload, stream, where.adapter)
