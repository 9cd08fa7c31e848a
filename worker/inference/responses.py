"""The answers in OpenAI's shapes (openai-python types/chat/chat_completion*.py, types/completion*.py),
as vLLM's OpenAI server writes them too: whole objects, and the chunks of a stream."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from worker.inference.generation import TokenLogprob

FINGERPRINT = "tunery-embedded"


class Answer:
    """The choices of one request as they are produced, and the objects that report them."""

    def __init__(self, kind: str, model: str, include_usage: bool = False) -> None:
        self.kind = kind  # "chat" or "completion"
        self.model = model
        self.include_usage = include_usage
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.prompt_tokens = 0
        self.texts: dict[int, str] = {}
        self.logprobs: dict[int, list[TokenLogprob]] = {}
        self.finish_reasons: dict[int, str] = {}
        self.completion_tokens = 0

    def add(self, index: int, text: str, logprobs: list[TokenLogprob]) -> None:
        self.texts[index] = self.texts.get(index, "") + text
        self.logprobs.setdefault(index, []).extend(logprobs)

    def end(self, index: int, finish_reason: str, tokens: int) -> None:
        self.texts.setdefault(index, "")
        self.finish_reasons[index] = finish_reason
        self.completion_tokens += tokens

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def whole(self, with_logprobs: bool) -> dict[str, Any]:
        choices = [self._choice(index, with_logprobs) for index in sorted(self.texts)]
        return {
            "id": self.id,
            "object": "chat.completion" if self.kind == "chat" else "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
            "usage": self.usage(),
        }

    def _choice(self, index: int, with_logprobs: bool) -> dict[str, Any]:
        logprobs = self.logprobs.get(index, []) if with_logprobs else None
        if self.kind == "chat":
            return {
                "index": index,
                "message": {"role": "assistant", "content": self.texts[index], "refusal": None},
                "finish_reason": self.finish_reasons[index],
                "logprobs": chat_logprobs(logprobs) if logprobs is not None else None,
            }
        return {
            "index": index,
            "text": self.texts[index],
            "finish_reason": self.finish_reasons[index],
            "logprobs": completion_logprobs(logprobs, 0) if logprobs is not None else None,
        }

    # Streaming: each method returns one server-sent event.

    def role_chunk(self, index: int) -> str:
        return self._chunk([{"index": index, "delta": {"role": "assistant", "content": ""}, **_open()}])

    def piece_chunk(self, index: int, text: str, logprobs: list[TokenLogprob], with_logprobs: bool) -> str:
        if self.kind == "chat":
            choice = {
                "index": index,
                "delta": {"content": text},
                "finish_reason": None,
                "logprobs": chat_logprobs(logprobs) if with_logprobs else None,
            }
        else:
            offset = len(self.texts.get(index, "")) - len(text)
            choice = {
                "index": index,
                "text": text,
                "finish_reason": None,
                "logprobs": completion_logprobs(logprobs, offset) if with_logprobs else None,
            }
        return self._chunk([choice])

    def finish_chunk(self, index: int) -> str:
        reason = self.finish_reasons[index]
        if self.kind == "chat":
            return self._chunk([{"index": index, "delta": {}, "finish_reason": reason, "logprobs": None}])
        return self._chunk([{"index": index, "text": "", "finish_reason": reason, "logprobs": None}])

    def usage_chunk(self) -> str:
        return self._chunk([], usage=self.usage())

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.kind == "chat" else "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage  # null on every chunk but the last, as OpenAI sends it
        return sse(chunk)


def sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


DONE = "data: [DONE]\n\n"


def chat_logprobs(logprobs: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": item.token,
                "logprob": item.logprob,
                "bytes": list(item.token.encode()),
                "top_logprobs": [
                    {"token": token, "logprob": logprob, "bytes": list(token.encode())}
                    for token, logprob in item.top
                ],
            }
            for item in logprobs
        ],
        "refusal": None,
    }


def completion_logprobs(logprobs: list[TokenLogprob], offset: int) -> dict[str, Any]:
    offsets, at = [], offset
    for item in logprobs:
        offsets.append(at)
        at += len(item.token)
    return {
        "tokens": [item.token for item in logprobs],
        "token_logprobs": [item.logprob for item in logprobs],
        "top_logprobs": [dict(item.top) for item in logprobs],
        "text_offset": offsets,
    }


def _open() -> dict[str, Any]:
    return {"finish_reason": None, "logprobs": None}
