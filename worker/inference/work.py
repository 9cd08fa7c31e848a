"""The work each route hands the engine: resolve the model, build the prompt, check the limits, then
generate (or classify). Single-choice generations are Batchable: the engine may answer several in one
`generate` call."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import torch

from api.inference.schemas import BackendChatRequest, BackendClassificationRequest, BackendCompletionRequest
from worker.inference.engine import Batchable, Classified, Emit, Ended, Generation, Produced, Ready, Work
from worker.inference.generation import Piece, SamplingParams, generate_choice
from worker.inference.models import ModelPool, Servable
from worker.inference.prompts import PromptError, chat_prompt_ids, completion_prompt_ids


def chat_work(request: BackendChatRequest) -> Work | Batchable:
    def prepare(pool: ModelPool) -> tuple[Servable, list[list[int]], SamplingParams]:
        servable = _generative(pool, request.model, request.target)
        tools = request.tools if request.tool_choice != "none" else None
        messages = [message.model_dump(exclude_none=True) for message in request.messages]
        prompt = chat_prompt_ids(servable.tokenizer, messages, tools)
        params = _sampling(request.token_limit, request, servable, [prompt], _chat_top_logprobs(request))
        return servable, [prompt], params

    return _work(request, prepare)


def completion_work(request: BackendCompletionRequest) -> Work | Batchable:
    def prepare(pool: ModelPool) -> tuple[Servable, list[list[int]], SamplingParams]:
        servable = _generative(pool, request.model, request.target)
        prompts = [completion_prompt_ids(servable.tokenizer, prompt) for prompt in request.prompts]
        params = _sampling(request.max_tokens or 16, request, servable, prompts, request.logprobs)
        return servable, prompts, params

    return _work(request, prepare)


def _work(
    request: BackendChatRequest | BackendCompletionRequest,
    prepare: Callable[[ModelPool], tuple[Servable, list[list[int]], SamplingParams]],
) -> Work | Batchable:
    one_choice = (request.n or 1) == 1 and len(getattr(request, "prompts", [None])) == 1
    if one_choice and request.seed is None and not request.logprobs:
        # A seeded request must not depend on what it shares a batch with; logprobs are kept per call.
        def prepared(pool: ModelPool) -> Generation:
            servable, prompts, params = prepare(pool)
            return Generation(servable, prompts[0], params)

        return Batchable(prepared, request.target.artifact_dir if request.target else None)

    def work(pool: ModelPool, emit: Emit, cancelled: threading.Event) -> None:
        servable, prompts, params = prepare(pool)
        _generate(servable, prompts, params, request.n or 1, request.seed, emit, cancelled)

    return work


def classification_work(request: BackendClassificationRequest) -> Work:
    def work(pool: ModelPool, emit: Emit, cancelled: threading.Event) -> None:
        servable = pool.get(request.model, request.target)
        if servable.task != "SEQ_CLS":
            raise PromptError(f"{request.model} is not a classification model; use /v1/chat/completions.")
        id2label = servable.model.config.id2label
        results, tokens = [], 0
        for index, text in enumerate(request.texts):
            # One text at a time: a decoder classifies from its last real token, and padding would have
            # to be told apart from it.
            inputs = servable.tokenizer(
                text, truncation=True, max_length=servable.context_length, return_tensors="pt"
            ).to(servable.model.device)
            with torch.inference_mode():
                logits = servable.model(**inputs).logits[0].float()
            scores = torch.softmax(logits, dim=-1).tolist()
            best = max(range(len(scores)), key=scores.__getitem__)
            labels = {str(id2label[i]): round(score, 6) for i, score in enumerate(scores)}
            results.append({"index": index, "label": str(id2label[best]), "scores": labels})
            tokens += int(inputs["input_ids"].shape[1])
        emit(Classified(results, tokens))

    return work


def _generative(pool: ModelPool, model: str, target: Any) -> Servable:
    servable = pool.get(model, target)
    if servable.task != "CAUSAL_LM":
        raise PromptError(f"{model} is a classification model; use /v1/classifications.")
    return servable


def _chat_top_logprobs(request: BackendChatRequest) -> int | None:
    return (request.top_logprobs or 0) if request.logprobs else None


def _sampling(
    limit: int | None,
    request: BackendChatRequest | BackendCompletionRequest,
    servable: Servable,
    prompts: list[list[int]],
    top_logprobs: int | None,
) -> SamplingParams:
    longest = max(len(prompt) for prompt in prompts)
    room = servable.context_length - longest
    if room <= 0 or (limit is not None and limit > room):
        asked = f" and {limit} to generate" if limit is not None else ""
        raise PromptError(
            f"This model's maximum context length is {servable.context_length} tokens; the request has "
            f"{longest} in its prompt{asked}.",
            "context_length_exceeded",
        )
    return SamplingParams(
        max_tokens=limit or room,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        stop=tuple(request.stop_strings),
        top_logprobs=top_logprobs,
    )


def _generate(
    servable: Servable,
    prompts: list[list[int]],
    params: SamplingParams,
    n: int,
    seed: int | None,
    emit: Emit,
    cancelled: threading.Event,
) -> None:
    emit(Ready(sum(len(prompt) for prompt in prompts)))
    # One seed for the whole request, the choices drawn one after another from it: the same seed gives
    # the same choices. Unseeded requests must not repeat the previous request's draws.
    torch.manual_seed(seed if seed is not None else random.SystemRandom().randrange(2**63))
    with servable.active() as model:
        for p, prompt in enumerate(prompts):
            for j in range(n):
                index = p * n + j

                def produced(piece: Piece, index: int = index) -> None:
                    emit(Produced(index, piece))

                finished = generate_choice(
                    model, servable.tokenizer, prompt, params, servable.stop_token_ids, cancelled, produced
                )
                emit(Ended(index, finished))
