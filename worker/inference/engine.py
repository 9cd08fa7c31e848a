"""Where requests meet torch: one generation thread, a bounded line of requests before it, and the
work each route hands it.

torch work runs off the event loop in one thread: a CPU or a single GPU gains nothing from two
`generate` calls at once, and a pool switched between adapters must not switch under a running one.
The event loop keeps answering (health checks, 429s, streams) while it works. A request's work sends
events back to the loop as it goes; a cancelled request's work stops between two tokens.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from api.inference.schemas import BackendChatRequest, BackendClassificationRequest, BackendCompletionRequest
from worker.inference.generation import Cancelled, Finished, Piece, SamplingParams, generate_choice
from worker.inference.models import ModelPool, Servable
from worker.inference.prompts import PromptError, chat_prompt_ids, completion_prompt_ids


@dataclass(frozen=True)
class Ready:
    """The model is loaded and the prompts fit: generation starts."""

    prompt_tokens: int


@dataclass(frozen=True)
class Produced:
    index: int
    piece: Piece


@dataclass(frozen=True)
class Ended:
    index: int
    finished: Finished


@dataclass(frozen=True)
class Classified:
    results: list[dict[str, Any]]
    prompt_tokens: int


@dataclass(frozen=True)
class Failed:
    error: BaseException


@dataclass(frozen=True)
class Done:
    pass


Event = Ready | Produced | Ended | Classified | Failed | Done
Emit = Callable[[Event], None]
Work = Callable[[ModelPool, Emit, threading.Event], None]


class Busy(Exception):
    """More requests than the backend runs plus lets wait (answered 429)."""


class EventStream:
    """One request's events, crossing from the generation thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.cancelled = threading.Event()

    def put(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def put_here(self, event: Event) -> None:
        """`put` from the event loop itself."""
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def cancel(self) -> None:
        self.cancelled.set()


class Engine:
    def __init__(self, pool: ModelPool, max_queue: int) -> None:
        self.pool = pool
        self.capacity = 1 + max_queue
        self.admitted = 0  # requests running or waiting; touched only on the event loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunery-generate")

    def submit(self, work: Work) -> EventStream:
        """Queue `work`, or refuse it with Busy when the line is full."""
        if self.admitted >= self.capacity:
            raise Busy(f"The inference backend is busy ({self.capacity} requests running or waiting).")
        loop = asyncio.get_running_loop()
        events = EventStream(loop)
        self.admitted += 1

        def run() -> None:
            last: Event = Done()
            try:
                if not events.cancelled.is_set():  # a client that left while it waited
                    work(self.pool, events.put, events.cancelled)
            except Cancelled:
                pass
            except Exception as error:
                last = Failed(error)
            finally:
                # The place in line is free before the client hears the end: its next request fits.
                loop.call_soon_threadsafe(self._finish, events, last)

        self._executor.submit(run)
        return events

    async def run_between(self, task: Callable[[ModelPool], Any]) -> Any:
        """Run `task` on the generation thread between two requests' work: it may change the pool.
        It takes no place in line (an unload must not be refused as busy)."""
        return await asyncio.wrap_future(self._executor.submit(task, self.pool))

    def _finish(self, events: EventStream, last: Event) -> None:
        self.admitted -= 1
        events.put_here(last)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def chat_work(request: BackendChatRequest) -> Work:
    def work(pool: ModelPool, emit: Emit, cancelled: threading.Event) -> None:
        servable = _generative(pool, request.model, request.target)
        tools = request.tools if request.tool_choice != "none" else None
        messages = [message.model_dump(exclude_none=True) for message in request.messages]
        prompt = chat_prompt_ids(servable.tokenizer, messages, tools)
        params = _sampling(request.token_limit, request, servable, [prompt], _chat_top_logprobs(request))
        _generate(servable, [prompt], params, request.n or 1, request.seed, emit, cancelled)

    return work


def completion_work(request: BackendCompletionRequest) -> Work:
    def work(pool: ModelPool, emit: Emit, cancelled: threading.Event) -> None:
        servable = _generative(pool, request.model, request.target)
        prompts = [completion_prompt_ids(servable.tokenizer, prompt) for prompt in request.prompts]
        params = _sampling(request.max_tokens or 16, request, servable, prompts, request.logprobs)
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
