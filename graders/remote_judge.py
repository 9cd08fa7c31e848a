"""The judge of model graders over HTTP: an OpenAI-shaped /v1/chat/completions route asked for an answer.

An `Endpoint` is where one judging model answers: the route's URL and the request's fields besides
the messages and the sampling (the model's name and, for Tunery's embedded backend, the target it
loads). The API resolves endpoints per request (api/graders/judge.py); the worker resolves them when
it stages a reinforcement job and writes them into the trainer's spec, so the trainer reaches the
inference backend without a database or the API's code. The asking itself is defined once, here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from graders.judges import JudgeAnswer, JudgeFailed

JUDGE_TIMEOUT_S = 120.0
BUSY_RETRIES = 8
"""A backend with a full line answers 429 (or 503) with Retry-After: asked again this many times."""
MAX_RETRY_WAIT_S = 5.0


@dataclass(frozen=True)
class Endpoint:
    url: str
    body: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "body": self.body}


def ask(
    endpoint: Endpoint,
    messages: list[dict[str, str]],
    sampling: dict[str, Any],
    client: httpx.Client | None = None,
    timeout: float = JUDGE_TIMEOUT_S,
) -> JudgeAnswer:
    """The judge's answer; JudgeFailed when the backend can't be reached or does not answer 200."""
    payload = {**endpoint.body, "messages": messages, **sampling}
    model = endpoint.body.get("model", endpoint.url)
    for attempt in range(BUSY_RETRIES + 1):
        try:
            response = (client or httpx).post(endpoint.url, json=payload, timeout=timeout)
        except httpx.HTTPError as error:
            raise JudgeFailed(
                f"the inference backend does not answer for {model} ({type(error).__name__}); "
                "start it with `tunery inference` (`tunery serve` starts it)"
            ) from None
        if response.status_code in (429, 503) and attempt < BUSY_RETRIES:
            time.sleep(_retry_after(response))
            continue
        break
    if response.status_code != 200:
        raise JudgeFailed(f"the inference backend answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    choice = body["choices"][0]
    text = choice["message"].get("content") or ""
    usage = {k: int(v) for k, v in (body.get("usage") or {}).items() if isinstance(v, int)}
    return JudgeAnswer(text, usage, choice.get("finish_reason"))


class EndpointJudge:
    """A `Judge` over endpoints resolved beforehand: model -> its Endpoint, or why it has none."""

    def __init__(self, endpoints: Mapping[str, Endpoint | str]) -> None:
        self.endpoints = dict(endpoints)
        self.client = httpx.Client()  # one connection pool for the whole run's judging

    @classmethod
    def from_spec(cls, judges: Mapping[str, dict[str, Any]]) -> EndpointJudge:
        """From a training spec's `judges`: {model: {"url", "body"}} or {model: {"error": why}}."""
        return cls(
            {
                model: entry["error"] if "error" in entry else Endpoint(entry["url"], entry.get("body") or {})
                for model, entry in judges.items()
            }
        )

    def __call__(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> JudgeAnswer:
        endpoint = self.endpoints.get(model)
        if endpoint is None:
            raise JudgeFailed(f"model {model!r} was not resolved for this run")
        if isinstance(endpoint, str):
            raise JudgeFailed(f"model {model!r}: {endpoint}")
        return ask(endpoint, messages, sampling, self.client)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(MAX_RETRY_WAIT_S, max(0.1, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0
