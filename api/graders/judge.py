"""The judge of score_model and label_model graders: a model Tunery serves, asked over HTTP.

The model is resolved as /v1/chat/completions resolves it (a base model, or a fine-tuned or
checkpoint model the caller's project may use), in a short session of its own, and the question
goes to the inference backend with no database session open: an answer may take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from api.auth.service import Caller
from api.config import Settings
from api.db import session_scope
from api.errors import TuneryError
from api.inference import service as inference
from api.inference.routing import route
from api.models.store import ModelStore
from graders.judges import JudgeAnswer, JudgeFailed

JUDGE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class BackendJudge:
    settings: Settings
    sessions: sessionmaker[Session]
    store: ModelStore
    caller: Caller

    def __call__(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> JudgeAnswer:
        url, payload = self._request(model)
        payload.update(messages=messages, **sampling)
        try:
            response = httpx.post(url, json=payload, timeout=JUDGE_TIMEOUT_S)
        except httpx.HTTPError as error:
            raise JudgeFailed(
                f"the inference backend does not answer for {model} ({type(error).__name__}); "
                "start it with `tunery inference` (`tunery serve` starts it)"
            ) from None
        if response.status_code != 200:
            raise JudgeFailed(f"the inference backend answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        text = body["choices"][0]["message"].get("content") or ""
        usage = {k: int(v) for k, v in (body.get("usage") or {}).items() if isinstance(v, int)}
        return JudgeAnswer(text, usage)

    def _request(self, model: str) -> tuple[str, dict[str, Any]]:
        try:
            with session_scope(self.sessions, writes=False) as session:
                served = inference.resolve(session, self.settings, self.store, self.caller, model)
            inference.require_task(served, "generate")
        except TuneryError as error:
            raise JudgeFailed(f"model {model!r}: {error.message}") from None
        target = served.target
        where = route(self.settings, served.name, target.base_model, target.artifact_dir, served.task)
        if where.vllm_url is None:
            url = f"{self.settings.inference_base_url}/v1/chat/completions"
            return url, {"model": served.name, "target": target.model_dump()}
        if where.adapter is not None:
            raise JudgeFailed(
                f"model {model!r} is a LoRA served by vLLM: judge with its base or an embedded model"
            )
        return f"{where.vllm_url}/v1/chat/completions", {"model": served.name}
