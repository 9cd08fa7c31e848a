"""The API's client of a vLLM OpenAI server: LoRA adapters registered on first use, requests forwarded
under the adapter's name.

What it assumes of vLLM (its OpenAI server, `vllm serve BASE --enable-lora` with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), written defensively because these shapes have moved between
versions:

- `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` answers 200 (a plain-text "Success" line, not
  JSON) once the adapter is loaded; a name already loaded is a 400 whose message says "already" (taken
  as success: two API requests may register the same adapter at once). Without the environment variable
  the route does not exist (404).
- `POST /v1/unload_lora_adapter {"lora_name"}` (api/inference/unloading.py); an unknown name is a 4xx.
- `GET /v1/models` lists the served base model first; LoRA entries carry `parent` (the base's name).
- A completion for a `model` vLLM does not know is a 404 (`{"object": "error", ..., "code": 404}`, or
  `{"error": {...}}` in newer versions): the adapter was forgotten (vLLM restarted), so it is registered
  again and the request sent once more. Nothing of the answer has reached the client by then.
- vLLM reads `lora_path` itself: it must see the data directory at the same path as the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import Response

from api.errors import TuneryError
from api.inference.backend import InferenceBackend

CONTROL_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=5.0)  # loading reads the adapter


class AdapterNotLoaded(TuneryError):
    """vLLM refused to load an adapter: its message, and what to change."""

    status_code = 502
    type = "server_error"
    code = "adapter_not_loaded"


@dataclass(frozen=True)
class LoraAdapter:
    name: str
    """The name vLLM serves it under: the fine-tuned model's name, so vLLM's answers carry it."""
    path: str
    """Its directory, which vLLM reads."""


class VllmBackend:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.forwarder = InferenceBackend(
            base_url, hint="Start that vLLM server, or change TUNERY_INFERENCE_BACKENDS."
        )
        self.registered: set[str] = set()
        """Adapter names this process has loaded into vLLM (vLLM may have forgotten them since)."""
        self._served_name: str | None = None

    async def forward(
        self, request: Request, path: str, payload: dict[str, Any], stream: bool, adapter: LoraAdapter | None
    ) -> Response:
        """Forward to vLLM: `adapter` under its name (registered first if need be), else the served model."""
        body = {key: value for key, value in payload.items() if key != "target"}
        if adapter is None:
            body["model"] = await self.served_model(default=str(payload["model"]))
            return await self.forwarder.forward(request, path, body, stream)
        if adapter.name not in self.registered:
            await self.register(adapter)
        body["model"] = adapter.name

        async def register_again() -> None:
            self.registered.discard(adapter.name)
            await self.register(adapter)

        return await self.forwarder.forward(request, path, body, stream, on_not_found=register_again)

    async def register(self, adapter: LoraAdapter) -> None:
        body = {"lora_name": adapter.name, "lora_path": adapter.path}
        answer = await self._control("POST", "/load_lora_adapter", body)
        if answer.status_code == 200 or (answer.status_code == 400 and "already" in answer.text.lower()):
            self.registered.add(adapter.name)
            return
        if answer.status_code == 404 and "detail" in _json(answer):
            message = "it has no /v1/load_lora_adapter: start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
        else:
            message = f"it answered {answer.status_code}: {_message(answer)}"
        raise AdapterNotLoaded(
            f"The vLLM server at {self.base_url} did not load the adapter of '{adapter.name}' from "
            f"{adapter.path}; {message}. It needs --enable-lora, a --max-lora-rank at least the adapter's "
            "rank, and the data directory at the same path as the API."
        )

    async def served_model(self, default: str) -> str:
        """The base model's name at vLLM (--served-model-name, or the path it was started with)."""
        if self._served_name is None:
            try:
                answer = await self._control("GET", "/models", None)
                models = _json(answer).get("data") or []
                bases = [m["id"] for m in models if isinstance(m, dict) and "id" in m and not m.get("parent")]
                self._served_name = bases[0] if bases else None
            except (AdapterNotLoaded, ValueError, KeyError):
                pass  # the completion request that follows says what is wrong
        return self._served_name or default

    async def _control(self, method: str, path: str, payload: dict[str, Any] | None) -> httpx.Response:
        try:
            async with httpx.AsyncClient(base_url=f"{self.base_url}/v1", timeout=CONTROL_TIMEOUT) as client:
                return await client.request(method, path, json=payload)
        except httpx.HTTPError as error:
            raise AdapterNotLoaded(
                f"The vLLM server at {self.base_url} does not answer ({type(error).__name__}). "
                "Start it, or change TUNERY_INFERENCE_BACKENDS."
            ) from None


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(answer: httpx.Response) -> str:
    body = _json(answer)
    nested = body.get("error")
    error: dict[str, Any] = nested if isinstance(nested, dict) else body
    return str(error.get("message") or error.get("detail") or answer.text[:300])
