"""The answers in OpenAI's shapes (openai-python types/chat/chat_completion*.py, types/completion*.py),
as vLLM's OpenAI server writes them too: whole objects, and the chunks of a stream."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from worker.inference.generation import TokenLogprob
from worker.inference.tool_calls import ToolCall, held_back, parse_tool_calls

FINGERPRINT = "tunery-embedded"


class Answer:
    """The choices of one request as they are produced, and the objects that report them."""

    def __init__(self, kind: str, model: str, include_usage: bool = False, tools: bool = False) -> None:
        self.kind = kind  # "chat" or "completion"
        self.tools = tools and kind == "chat"
        """The request offered tools (and did not forbid them): answers are read for tool calls."""
        self.model = model
        self.include_usage = include_usage
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.prompt_tokens = 0
        self.texts: dict[int, str] = {}
        self.logprobs: dict[int, list[TokenLogprob]] = {}
        self.finish_reasons: dict[int, str] = {}
        self.completion_tokens = 0
        self.tool_calls: dict[int, list[ToolCall]] = {}
        self.outside: dict[int, str | None] = {}  # a choice's text besides its tool calls
        self.streamed: dict[int, int] = {}  # characters of each choice's text streamed as content

    def add(self, index: int, text: str, logprobs: list[TokenLogprob]) -> None:
        self.texts[index] = self.texts.get(index, "") + text
        self.logprobs.setdefault(index, []).extend(logprobs)

    def end(self, index: int, finish_reason: str, tokens: int) -> None:
        self.texts.setdefault(index, "")
        self.finish_reasons[index] = finish_reason
        self.completion_tokens += tokens
        if self.tools:
            outside, calls = parse_tool_calls(self.texts[index])
            if calls:
                self.tool_calls[index], self.outside[index] = calls, outside
                self.finish_reasons[index] = "tool_calls"

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
            message: dict[str, Any] = {"role": "assistant", "content": self.texts[index], "refusal": None}
            if index in self.tool_calls:
                message["content"] = self.outside[index]
                message["tool_calls"] = [call.as_openai() for call in self.tool_calls[index]]
            return {
                "index": index,
                "message": message,
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

    def stream_piece(self, index: int, logprobs: list[TokenLogprob], with_logprobs: bool) -> str | None:
        """The chunk for what of a choice's text (added already) may be streamed now, None for none.

        With tools, content stops at a tool call's opening tag (or what may become one): the calls go
        out whole at the end, as `tool_calls` deltas."""
        text = self.texts.get(index, "")
        upto = held_back(text) if self.tools else len(text)
        start = self.streamed.get(index, 0)
        if upto <= start:
            return None
        self.streamed[index] = upto
        return self.piece_chunk(index, text[start:upto], logprobs, with_logprobs)

    def end_chunks(self, index: int) -> list[str]:
        """After `end`: what a stream still owes of a choice, its text held back or its tool calls,
        then the chunk with its finish reason."""
        chunks = []
        if index in self.tool_calls:
            for position, call in enumerate(self.tool_calls[index]):
                delta = {"tool_calls": [{"index": position, **call.as_openai()}]}
                chunks.append(self._chunk([{"index": index, "delta": delta, **_open()}]))
        elif self.kind == "chat":
            text, start = self.texts.get(index, ""), self.streamed.get(index, 0)
            if self.tools and len(text) > start:  # a tag that was no call after all: text
                self.streamed[index] = len(text)
                chunks.append(self.piece_chunk(index, text[start:], [], False))
        return [*chunks, self.finish_chunk(index)]

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
