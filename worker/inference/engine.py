"""Where requests meet torch: one generation thread, a bounded line of requests before it, and the
batches it makes of them.

torch work runs off the event loop in one thread: a pool switched between adapters must not switch
under a running `generate`. What the thread gains from the hardware it gains by batching instead: a
turn takes the first request waiting and every batchable one behind it (single-choice generations of
the same base model and sampling, whatever their LoRA adapter) and answers them in one `generate`
call, each row with its own adapter (peft's mixed-adapter batches). The event loop keeps answering
(health checks, 429s, streams) while it works. A request's work sends events back to the loop as it
goes; a cancelled request stops between two tokens.

A request for a model that is not loaded yet does not take its turn on the generation thread until
a loader thread has loaded it (ModelPool.prefetch): requests for loaded models keep being answered
meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import torch

from api.inference.schemas import BackendTarget
from worker.inference.generation import (
    Cancelled,
    Finished,
    Piece,
    Row,
    SamplingParams,
    generate_batch,
    generate_choice,
)
from worker.inference.models import ModelPool, Servable


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


MAX_BATCH = 8  # requests answered by one `generate` call


@dataclass
class Generation:
    """A single-choice, unseeded request without logprobs, prepared: what a batch is made of."""

    servable: Servable
    prompt_ids: list[int]
    params: SamplingParams

    def batch_key(self) -> tuple[Any, ...] | None:
        """Requests with equal keys can share a `generate` call; None: this one runs alone."""
        if not self.servable.shared:
            return None
        stops = tuple(self.servable.stop_token_ids)
        return (id(self.servable.model), self.params.temperature, self.params.top_p, stops)


@dataclass
class Batchable:
    """The work of a request that can join a batch: prepared on the generation thread, then run in
    one `generate` call with the other requests waiting for the same base model."""

    prepare: Callable[[ModelPool], Generation]
    artifact_dir: str | None


@dataclass
class _Waiting:
    work: Work | Batchable
    events: EventStream


class Engine:
    def __init__(self, pool: ModelPool, max_queue: int) -> None:
        self.pool = pool
        self.capacity = 1 + max_queue
        self.admitted = 0  # requests running or waiting; touched only on the event loop
        self.batch_sizes: list[int] = []  # of each batched `generate` call: what tests and benchmarks read
        # Generations stopped before their end because their client left (health reports it).
        self.cancelled = 0
        self._waiting: deque[_Waiting] = deque()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunery-generate")
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunery-load")

    def submit(
        self, work: Work | Batchable, needs: tuple[str, BackendTarget | None] | None = None
    ) -> EventStream:
        """Queue `work`, or refuse it with Busy when the line is full. `needs`, the model the work
        asks the pool for (its name and target): when not loaded, it is loaded first on the loader
        thread, and the work joins the line once it is."""
        if self.admitted >= self.capacity:
            raise Busy(f"The inference backend is busy ({self.capacity} requests running or waiting).")
        loop = asyncio.get_running_loop()
        events = EventStream(loop)
        self.admitted += 1
        waiting = _Waiting(work, events)
        if needs is not None and not self.pool.ready(*needs):
            loading = self._loader.submit(self.pool.prefetch, *needs)
            loading.add_done_callback(lambda done: self._loaded(waiting, done))
        else:
            self._enqueue(waiting)
        return events

    def _loaded(self, waiting: _Waiting, loading: Future[None]) -> None:
        error = None if loading.cancelled() else loading.exception()
        if loading.cancelled() or error is not None:
            self._end(waiting, Failed(error or RuntimeError("the inference backend is shutting down")))
            return
        self._enqueue(waiting)

    def _enqueue(self, waiting: _Waiting) -> None:
        with self._lock:
            self._waiting.append(waiting)
        # A turn per request; a turn that batched its followers leaves their turns nothing to do.
        try:
            self._executor.submit(self._turn)
        except RuntimeError:  # shut down while it loaded
            self._end(waiting, Failed(RuntimeError("the inference backend is shutting down")))

    def _turn(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            first = self._waiting.popleft()
            taken = [first] + (self._followers(first.work) if isinstance(first.work, Batchable) else [])
        if not isinstance(first.work, Batchable):
            self._run_alone(first)
            return
        prepared = [(waiting, self._prepared(waiting)) for waiting in taken]
        groups: dict[Any, list[tuple[_Waiting, Generation]]] = {}
        for waiting, generation in prepared:
            if generation is not None:
                key = generation.batch_key() or id(waiting)
                groups.setdefault(key, []).append((waiting, generation))
        for group in groups.values():
            self._run_batch(group)

    def _followers(self, work: Batchable) -> list[_Waiting]:
        """Batchable requests waiting behind the first, as many as fit one batch without evicting an
        adapter another of the batch needs. Called with the lock held."""
        followers: list[_Waiting] = []
        adapters = {work.artifact_dir} - {None}
        for waiting in list(self._waiting):
            if len(followers) + 1 >= MAX_BATCH:
                break
            if not isinstance(waiting.work, Batchable):
                continue
            wanted = adapters | ({waiting.work.artifact_dir} - {None})
            if len(wanted) > self.pool.max_adapters:
                continue
            adapters = wanted
            self._waiting.remove(waiting)
            followers.append(waiting)
        return followers

    def _prepared(self, waiting: _Waiting) -> Generation | None:
        assert isinstance(waiting.work, Batchable)
        if waiting.events.cancelled.is_set():
            self._end(waiting, Done())
            return None
        try:
            generation = waiting.work.prepare(self.pool)
        except Exception as error:
            self._end(waiting, Failed(error))
            return None
        waiting.events.put(Ready(len(generation.prompt_ids)))
        return generation

    def _run_batch(self, group: list[tuple[_Waiting, Generation]]) -> None:
        servable = group[0][1].servable
        rows = [
            Row(
                g.prompt_ids, g.params, w.events.cancelled, _index_zero(w.events.put), g.servable.adapter_name
            )
            for w, g in group
        ]
        torch.manual_seed(random.SystemRandom().randrange(2**63))
        try:
            if len(group) == 1:
                with servable.active() as model:
                    finished: list[Finished | None] = [
                        generate_choice(
                            model,
                            servable.tokenizer,
                            rows[0].prompt_ids,
                            rows[0].params,
                            servable.stop_token_ids,
                            rows[0].cancelled,
                            rows[0].emit,
                        )
                    ]
            else:
                self.batch_sizes.append(len(group))
                finished = generate_batch(servable.model, servable.tokenizer, rows, servable.stop_token_ids)
        except Cancelled:
            finished = [None]
        except Exception as error:
            for waiting, _ in group:
                self._end(waiting, Failed(error))
            return
        for (waiting, _), outcome in zip(group, finished, strict=True):
            if outcome is not None:
                waiting.events.put(Ended(0, outcome))
            else:
                self.cancelled += 1
            self._end(waiting, Done())

    def _run_alone(self, waiting: _Waiting) -> None:
        assert not isinstance(waiting.work, Batchable)
        events, last = waiting.events, cast(Event, Done())
        try:
            if not events.cancelled.is_set():  # a client that left while it waited
                waiting.work(self.pool, events.put, events.cancelled)
        except Cancelled:
            self.cancelled += 1
        except Exception as error:
            last = Failed(error)
        self._end(waiting, last)

    def _end(self, waiting: _Waiting, last: Event) -> None:
        # The place in line is free before the client hears the end: its next request fits.
        waiting.events._loop.call_soon_threadsafe(self._finish, waiting.events, last)

    async def run_between(self, task: Callable[[ModelPool], Any]) -> Any:
        """Run `task` on the generation thread between two requests' work: it may change the pool.
        It takes no place in line (an unload must not be refused as busy)."""
        return await asyncio.wrap_future(self._executor.submit(task, self.pool))

    def _finish(self, events: EventStream, last: Event) -> None:
        self.admitted -= 1
        events.put_here(last)

    def shutdown(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _index_zero(emit: Emit) -> Callable[[Piece], None]:
    def produced(piece: Piece) -> None:
        emit(Produced(0, piece))

    return produced
