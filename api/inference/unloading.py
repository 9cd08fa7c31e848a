"""Unloading a deleted fine-tuned model from the backends that may hold it: best effort, after the
delete commits. A backend that is down or refuses is logged and left: it loads nothing it is not
asked for, and the API answers 404 for the deleted model whatever a backend still holds."""

from __future__ import annotations

import logging

import httpx

from api.config import Settings

log = logging.getLogger(__name__)
# Short: the delete's answer waits for this, and a backend that is down has nothing to unload.
UNLOAD_TIMEOUT = httpx.Timeout(connect=2.0, read=10.0, write=5.0, pool=2.0)


def unload_everywhere(settings: Settings, name: str, base_model: str, artifact_dir: str) -> None:
    """Unload the fine-tuned model `name` (at `artifact_dir`) from the embedded backend, and from the
    vLLM server of its base (where it may be registered as a LoRA adapter under `name`)."""
    _post(settings.inference_base_url, "/v1/unload_model", {"artifact_dir": artifact_dir}, name)
    vllm_url = settings.vllm_url_for(base_model)
    if vllm_url is not None:
        # A 4xx (vLLM never loaded it, or forgot it in a restart) is as good as unloaded.
        _post(vllm_url, "/v1/unload_lora_adapter", {"lora_name": name}, name)


def _post(base_url: str, path: str, body: dict[str, str], name: str) -> None:
    try:
        answer = httpx.post(f"{base_url}{path}", json=body, timeout=UNLOAD_TIMEOUT)
    except httpx.HTTPError as error:
        log.warning(
            "Could not unload %s at %s (%s); it is deleted anyway.", name, base_url, type(error).__name__
        )
        return
    if answer.status_code >= 500:
        log.warning(
            "%s%s answered %s unloading %s: %s", base_url, path, answer.status_code, name, answer.text[:300]
        )
