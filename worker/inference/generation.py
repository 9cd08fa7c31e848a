"""One choice of one request: `model.generate` token by token, with OpenAI's stop rules.

`generate` itself picks the tokens (greedy or sampled), so what Tunery serves is what a user gets from
transformers by hand. Around it: the text arrives in pieces as tokens are picked (for streaming), stop
strings are cut out of the text (held back while they might still be forming), log-probabilities are
read from the model's own scores, and a cancelled request stops between two tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria
from transformers.generation.streamers import BaseStreamer


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    """0: greedy."""
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    top_logprobs: int | None = None
    """None: no log-probabilities; 0 to 20: the chosen token's and that many alternatives'."""


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]


@dataclass
class Piece:
    """What a choice produced since the last piece: text (possibly empty) and the tokens' logprobs."""

    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass(frozen=True)
class Finished:
    finish_reason: str
    """"stop" at an end-of-turn token or a stop string, "length" at max_tokens, "cancelled"."""
    completion_tokens: int


class Cancelled(Exception):
    """The client went away; nothing more is sent."""


def generate_choice(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[int],
    params: SamplingParams,
    stop_token_ids: list[int],
    cancelled: threading.Event,
    emit: Callable[[Piece], None],
) -> Finished:
    """Generate one choice, calling `emit` with each piece; `cancelled` stops it between tokens."""
    run = _Run(tokenizer, params, set(stop_token_ids), cancelled, emit)
    sampling = params.temperature > 0
    config = GenerationConfig(
        max_new_tokens=params.max_tokens,
        do_sample=sampling,
        # Only what OpenAI's parameters say: no top_k (transformers' default is 50), no penalties.
        top_k=0 if sampling else None,
        temperature=params.temperature if sampling else None,
        top_p=params.top_p if sampling else None,
        eos_token_id=list(stop_token_ids),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_token_ids[0],
    )
    device = next(model.parameters()).device
    input_ids = torch.tensor([prompt_ids], device=device)
    with torch.inference_mode():
        model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=config,
            streamer=run,
            stopping_criteria=[_StopWhenDone(run)],
            # Before the sampling warpers (transformers puts given processors first): the model's own
            # distribution, as vLLM reports it, whatever the temperature.
            logits_processor=LogitsProcessorList([_Scores(run)]) if params.top_logprobs is not None else None,
        )
    if cancelled.is_set():
        raise Cancelled
    return run.finish()


@dataclass(frozen=True)
class Row:
    """One single-choice request of a batch."""

    prompt_ids: list[int]
    params: SamplingParams
    cancelled: threading.Event
    emit: Callable[[Piece], None]
    adapter_name: str | None
    """Its peft adapter on the shared base model; None: the base model itself."""


BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch's `adapter_names`


def generate_batch(
    model: Any, tokenizer: Any, rows: list[Row], stop_token_ids: list[int]
) -> list[Finished | None]:
    """Generate one choice for each row in one `generate` call, each row with its own adapter (peft's
    mixed-adapter batches) and its own limit and stop strings; None for a row cancelled meanwhile.

    The rows share what `generate` takes once: temperature, top_p and the end-of-turn tokens; the
    engine batches only requests that agree on those. Prompts are padded on the left, as generation
    needs, and the attention mask hides the padding.
    """
    runs = [_Run(tokenizer, row.params, set(stop_token_ids), row.cancelled, row.emit) for row in rows]
    for run in runs:
        run._prompt_seen = True  # _Rows takes the prompt
    params = rows[0].params
    sampling = params.temperature > 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_token_ids[0]
    config = GenerationConfig(
        max_new_tokens=max(row.params.max_tokens for row in rows),
        do_sample=sampling,
        top_k=0 if sampling else None,
        temperature=params.temperature if sampling else None,
        top_p=params.top_p if sampling else None,
        eos_token_id=list(stop_token_ids),
        pad_token_id=pad,
    )
    longest = max(len(row.prompt_ids) for row in rows)
    device = next(model.parameters()).device
    input_ids = torch.tensor(
        [[pad] * (longest - len(r.prompt_ids)) + r.prompt_ids for r in rows], device=device
    )
    mask = torch.tensor(
        [[0] * (longest - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows], device=device
    )
    extra: dict[str, Any] = {}
    if hasattr(model, "peft_config"):
        extra["adapter_names"] = [row.adapter_name or BASE_ADAPTER for row in rows]
    with torch.inference_mode():
        model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            generation_config=config,
            streamer=_Rows(runs),
            stopping_criteria=[_RowsDone(runs)],
            **extra,
        )
    return [None if row.cancelled.is_set() else run.finish() for row, run in zip(rows, runs, strict=True)]


class _Rows(BaseStreamer):
    """Hands each row's picked token to that row's run."""

    def __init__(self, runs: list[_Run]) -> None:
        self.runs = runs
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for run, token in zip(self.runs, value.reshape(-1).tolist(), strict=True):
            run.put(torch.tensor([token]))

    def end(self) -> None:
        pass


class _RowsDone(StoppingCriteria):
    def __init__(self, runs: list[_Run]) -> None:
        self.runs = runs

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> Any:
        return torch.tensor([run.done for run in self.runs], dtype=torch.bool, device=input_ids.device)


class _Run(BaseStreamer):
    """Receives each picked token from `generate` and turns the tokens into text pieces."""

    def __init__(
        self,
        tokenizer: Any,
        params: SamplingParams,
        stop_token_ids: set[int],
        cancelled: threading.Event,
        emit: Callable[[Piece], None],
    ) -> None:
        self.tokenizer = tokenizer
        self.params = params
        self.stop_token_ids = stop_token_ids
        self.cancelled = cancelled
        self.emit = emit
        self.ids: list[int] = []
        self.text = ""  # decoded so far (stop strings not yet cut)
        self.sent = 0  # characters of `text` already emitted
        self.prefix_offset = self.read_offset = 0
        self.tokens = 0
        self.finish_reason: str | None = None
        self.scores: torch.Tensor | None = None
        self._prompt_seen = False

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.cancelled.is_set()

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate hands the streamer the prompt first
            self._prompt_seen = True
            return
        if self.done:
            return
        token = int(value.reshape(-1)[0])
        self.tokens += 1
        logprobs = [self._logprob(token)] if self.scores is not None else []
        if token in self.stop_token_ids:
            self._end("stop", logprobs)
            return
        self.ids.append(token)
        self._decode()
        if self._cut_at_stop_string():
            self.finish_reason = "stop"
            self._flush(len(self.text), logprobs)
            return
        self._flush(len(self.text) - self._held_back(), logprobs)
        if self.tokens >= self.params.max_tokens:  # in a batch, generate runs to the longest limit
            self._end("length", [])

    def end(self) -> None:
        pass

    def finish(self) -> Finished:
        if self.finish_reason is None:
            self._end("length", [])
        assert self.finish_reason is not None
        return Finished(self.finish_reason, self.tokens)

    def _end(self, reason: str, logprobs: list[TokenLogprob]) -> None:
        # What the last tokens held back (half a character, the start of a stop string) goes out now.
        self._decode(final=True)
        if self._cut_at_stop_string():
            reason = "stop"
        self.finish_reason = reason
        self._flush(len(self.text), logprobs)

    def _decode(self, final: bool = False) -> None:
        # Incremental detokenization (as TGI and vLLM do it): decode a short window, so a long answer
        # costs linear time, and wait while the window ends inside a multi-byte character.
        prefix = self.tokenizer.decode(
            self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=True
        )
        window = self.tokenizer.decode(self.ids[self.prefix_offset :], skip_special_tokens=True)
        if len(window) > len(prefix) and (final or not window.endswith("\ufffd")):
            self.text += window[len(prefix) :]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)

    def _cut_at_stop_string(self) -> bool:
        """Cut the text where a stop string starts, if one has appeared."""
        # Only new text can complete a stop string: search from where the longest one could start.
        longest = max((len(stop) for stop in self.params.stop), default=0)
        start = max(0, self.sent - longest)
        found = [at for stop in self.params.stop if (at := self.text.find(stop, start)) >= 0]
        if not found:
            return False
        self.text = self.text[: min(found)]
        return True

    def _held_back(self) -> int:
        """Characters at the end of the text that may be the start of a stop string."""
        for length in range(min(len(self.text), max((len(s) for s in self.params.stop), default=0)), 0, -1):
            tail = self.text[-length:]
            if any(stop.startswith(tail) for stop in self.params.stop):
                return length
        return 0

    def _flush(self, upto: int, logprobs: list[TokenLogprob]) -> None:
        if upto > self.sent or logprobs:
            text = self.text[self.sent : max(upto, self.sent)]
            self.sent = max(upto, self.sent)
            self.emit(Piece(text, logprobs))

    def _logprob(self, token: int) -> TokenLogprob:
        assert self.scores is not None
        k = self.params.top_logprobs or 0
        top = torch.topk(self.scores, k) if k else None
        alternatives = (
            [(self._token_text(int(i)), float(v)) for v, i in zip(top.values, top.indices, strict=True)]
            if top is not None
            else []
        )
        return TokenLogprob(self._token_text(token), float(self.scores[token]), alternatives)

    def _token_text(self, token: int) -> str:
        return self.tokenizer.decode([token])


class _Scores(LogitsProcessor):
    """Keeps the log-probabilities of the step the next picked token comes from."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.run.scores = torch.log_softmax(scores[0].float(), dim=-1)
        return scores


class _StopWhenDone(StoppingCriteria):
    """Ends `generate` after a stop string or a cancel: it only stops on its own at eos or the limit."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> Any:
        return torch.full((input_ids.shape[0],), self.run.done, dtype=torch.bool, device=input_ids.device)
