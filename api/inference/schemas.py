"""Request bodies of /v1/chat/completions, /v1/completions and /v1/classifications.

Field for field what the openai SDK sends (types/chat/completion_create_params.py and
types/completion_create_params.py), limited to what Tunery does: any other field is a 400 that names
it, never a silent default. The embedded inference backend reads the same classes (plus `target`),
so the API and the backend never disagree about what a request means.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from api.request_models import Strict

Role = Literal["developer", "system", "user", "assistant", "tool"]


class ContentPart(Strict):
    type: Literal["text"]
    """Only text: the models Tunery trains read no images or audio."""
    text: str


class ChatMessage(Strict):
    role: Role
    content: str | list[ContentPart] | None = None
    """Optional only on an assistant message that carries `tool_calls`."""
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _content_where_needed(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        return self


class StreamOptions(Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None
    """Accepted and ignored: the SDK may send it; Tunery's chunks carry no padding."""


class ResponseFormat(Strict):
    type: Literal["text"]
    """Only plain text for now: json_object and json_schema need constrained decoding."""


class Sampling(Strict):
    """What both generating routes share."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    """0 is greedy decoding; unset is 1, as at OpenAI."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    """The same seed and request give the same answer from the same model and backend."""
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    """Accepted and ignored (OpenAI uses it for abuse monitoring)."""

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not item for item in stops):
            raise ValueError("stop sequences must not be empty")
        return stop

    @property
    def stop_strings(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    """Supersedes max_tokens (which stays accepted)."""
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    """Passed to the chat template, as in training: the model sees them as it saw them then."""
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs set to true")
        return self

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    """A prompt, a list of prompts, or token ids (one list, or one list per prompt)."""
    logprobs: int | None = Field(default=None, ge=0, le=5)

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, prompt: Any) -> Any:
        if isinstance(prompt, list) and not prompt:
            raise ValueError("give at least one prompt")
        return prompt

    @property
    def prompts(self) -> list[str | list[int]]:
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(item, int) for item in self.prompt):
            return [list(self.prompt)]  # type: ignore[arg-type]
        return list(self.prompt)  # type: ignore[arg-type]


class ClassificationRequest(Strict):
    """Tunery's extension: classify text with a model trained by the classification method."""

    model: str
    input: str | list[str]
    """One text or a list of texts; the answer has one result per text, in order."""

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one text")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class BackendTarget(BaseModel):
    """What the API resolved `model` to, sent to the embedded backend beside the request.

    vLLM's OpenAI server needs no such field: there the API sends `model` as the name of an adapter it
    registered before. The embedded backend loads what this names on first use instead.
    """

    base_model: str
    """The base model's id in the model store."""
    artifact_dir: str | None = None
    """A job's (or checkpoint's) artifact directory: a PEFT adapter, or a whole model; None for the
    base model itself."""


class BackendChatRequest(ChatCompletionRequest):
    target: BackendTarget | None = None
    """None: `model` is a base model id in the backend's model store."""


class BackendCompletionRequest(CompletionRequest):
    target: BackendTarget | None = None


class BackendClassificationRequest(ClassificationRequest):
    target: BackendTarget | None = None
