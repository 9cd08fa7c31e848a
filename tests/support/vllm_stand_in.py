"""A stand-in for vLLM's OpenAI server with runtime LoRA updating, on a real port in a thread.

It speaks the routes Tunery uses, in vLLM's shapes: /v1/models, /v1/load_lora_adapter (a plain-text
success, a 400 for a name already loaded), /v1/unload_lora_adapter, /v1/chat/completions and
/v1/completions (a 404 `NotFoundError` for a model it doesn't serve, streamed or whole answers). It
records the load and unload calls (and the embedded backend's /v1/unload_model, when a test points
TUNERY_INFERENCE_URL here too), answers "<model> says hi" so a test sees which model answered, and
`restart()` forgets every adapter, as a restarted vLLM does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from tests.support.services import free_port
from tests.support.threaded_server import serve_in_thread

SERVED_MODEL = "served-base"


class VllmStandIn:
    def __init__(self) -> None:
        self.adapters: dict[str, str] = {}  # lora name -> path
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (route, body) of load, unload and completions
        self.refusal: str | None = None
        """Set: loads are refused with this message (vLLM's 400, e.g. a rank over --max-lora-rank)."""
        self.hold = False
        """Set: completions never answer; each waits until its client goes, then is recorded as
        ("abandoned", body). A test sees for certain whether the API let go of the request."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def restart(self) -> None:
        self.adapters.clear()

    def loads(self) -> list[dict[str, Any]]:
        return [body for route, body in self.calls if route == "load"]

    def unloads(self) -> list[dict[str, Any]]:
        return [body for route, body in self.calls if route == "unload"]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        def models() -> dict[str, Any]:
            base = {"id": SERVED_MODEL, "object": "model", "parent": None}
            lora = [
                {"id": name, "object": "model", "root": path, "parent": SERVED_MODEL}
                for name, path in self.adapters.items()
            ]
            return {"object": "list", "data": [base, *lora]}

        @app.post("/v1/load_lora_adapter")
        async def load(request: Request) -> Response:
            body = await request.json()
            self.calls.append(("load", body))
            if self.refusal is not None:
                return _error(self.refusal, "BadRequestError", 400)
            if body["lora_name"] in self.adapters:
                message = f"The lora adapter '{body['lora_name']}' has already been loaded."
                return _error(message, "InvalidUserInput", 400)
            self.adapters[body["lora_name"]] = body["lora_path"]
            return PlainTextResponse(f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

        @app.post("/v1/unload_lora_adapter")
        async def unload(request: Request) -> Response:
            body = await request.json()
            self.calls.append(("unload", body))
            if self.adapters.pop(body["lora_name"], None) is None:
                return _error(
                    f"The lora adapter '{body['lora_name']}' cannot be found.", "NotFoundError", 404
                )
            return PlainTextResponse(f"Success: LoRA adapter '{body['lora_name']}' removed successfully.")

        @app.post("/v1/unload_model")
        async def unload_model(request: Request) -> dict[str, Any]:
            # The embedded backend's route, not vLLM's: one stand-in can record what both are asked.
            body = await request.json()
            self.calls.append(("embedded-unload", body))
            return {"artifact_dir": body["artifact_dir"], "unloaded": False}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            return await self._complete(request, "chat")

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            return await self._complete(request, "completion")

        return app

    async def _complete(self, request: Request, kind: str) -> Response:
        body = await request.json()
        self.calls.append((kind, body))
        if self.hold:
            while not await request.is_disconnected():
                await asyncio.sleep(0.01)
            self.calls.append(("abandoned", body))
            return Response(status_code=499)
        model = body["model"]
        if model != SERVED_MODEL and model not in self.adapters:
            return _error(f"The model `{model}` does not exist.", "NotFoundError", 404)
        text = f"{model} says hi"
        created = int(time.time())
        if body.get("stream"):
            return StreamingResponse(_chunks(kind, model, created, text), media_type="text/event-stream")
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
        if kind == "chat":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return JSONResponse(
            {
                "id": "cmpl-standin",
                "object": "chat.completion" if kind == "chat" else "text_completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
        )


def _chunks(kind: str, model: str, created: int, text: str) -> Iterator[str]:
    head = {"id": "cmpl-standin", "created": created, "model": model}
    for word in text.split(" "):
        piece = word + " "
        if kind == "chat":
            choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            yield f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [choice]})}\n\n"
        else:
            choice = {"index": 0, "text": piece, "finish_reason": None}
            yield f"data: {json.dumps({**head, 'object': 'text_completion', 'choices': [choice]})}\n\n"
    yield "data: [DONE]\n\n"


def _error(message: str, type: str, code: int) -> JSONResponse:
    # vLLM's ErrorResponse (older versions; newer ones nest it under "error", which Tunery reads too).
    body = {"object": "error", "message": message, "type": type, "param": None, "code": code}
    return JSONResponse(body, status_code=code)


@contextmanager
def vllm_stand_in() -> Iterator[VllmStandIn]:
    stand_in = VllmStandIn()
    with serve_in_thread(stand_in.app(), port=stand_in.port):
        yield stand_in
