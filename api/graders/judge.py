"""The judges of score_model and label_model graders: models Tunery serves, asked over HTTP.

A judging model is resolved as /v1/chat/completions resolves it (a base model, or a fine-tuned or
checkpoint model the caller's project may use) into an `Endpoint` (graders/remote_judge.py). The
graders routes resolve it per request, in a short session of their own, and ask with no database
session open: an answer may take seconds. Job create checks that each judge of a reinforcement
grader resolves (a 400 naming the grader's `model` field); the worker resolves them again when it
stages the job and hands them to the trainer in its spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.auth.service import Caller
from api.config import Settings
from api.db import session_scope
from api.errors import InvalidRequest, TuneryError
from api.inference import service as inference
from api.inference.routing import route
from api.models.store import ModelStore
from graders import Grader
from graders.judges import JudgeAnswer, JudgeFailed
from graders.remote_judge import Endpoint, ask
from graders.types import model_graders


@dataclass(frozen=True)
class BackendJudge:
    settings: Settings
    sessions: sessionmaker[Session]
    store: ModelStore
    caller: Caller

    def __call__(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> JudgeAnswer:
        try:
            with session_scope(self.sessions, writes=False) as session:
                where = endpoint(session, self.settings, self.store, self.caller, model)
        except TuneryError as error:
            raise JudgeFailed(f"model {model!r}: {error.message}") from None
        return ask(where, messages, sampling)


def endpoint(session: Session, settings: Settings, store: ModelStore, caller: Caller, model: str) -> Endpoint:
    """Where `model` answers chat for the caller; a TuneryError when it can't judge."""
    served = inference.resolve(session, settings, store, caller, model)
    inference.require_task(served, "generate")
    target = served.target
    where = route(settings, served.name, target.base_model, target.artifact_dir, served.task)
    if where.vllm_url is None:
        url = f"{settings.inference_base_url}/v1/chat/completions"
        return Endpoint(url, {"model": served.name, "target": target.model_dump()})
    if where.adapter is not None:
        raise InvalidRequest(
            f"The model '{model}' is a LoRA served by vLLM: judge with its base or an embedded model.",
            param="model",
            code="model_not_supported",
        )
    return Endpoint(f"{where.vllm_url}/v1/chat/completions", {"model": served.name})


def check_judges(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, grader: Grader, param: str
) -> None:
    """A 400 naming the `model` field of the first judge the caller can't use."""
    for path, part in model_graders(grader):
        try:
            endpoint(session, settings, store, caller, part.model)
        except TuneryError as error:
            field = f"{param}.{path}model" if path else f"{param}.model"
            raise InvalidRequest(
                f"{field}: {error.message}", param=field, code=error.code or "model_not_found"
            ) from None


def judge_endpoints(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, grader: Grader
) -> dict[str, dict[str, Any]]:
    """A training spec's `judges`: each judging model's endpoint, or why it has none now (a model
    deleted since the job was created: its answers score 0 with that reason, as a judge that fails)."""
    judges: dict[str, dict[str, Any]] = {}
    for _, part in model_graders(grader):
        try:
            judges[part.model] = endpoint(session, settings, store, caller, part.model).to_dict()
        except TuneryError as error:
            judges[part.model] = {"error": error.message}
    return judges
