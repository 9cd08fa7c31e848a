"""Prompts as the model saw them in training: the artifact's own chat template renders the messages.

The tokenizer saved with an artifact is the one the trainer rendered the training data with, so the
prompt here is token for token what a training example's prompt was, and the model ends its turn with
the end-of-turn token the template writes after an assistant message, which training taught it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

# Tokens that end a turn in the common templates, for a template whose end of turn can't be found.
KNOWN_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
_MARK = "TUNERY-END-OF-TURN-MARK"


class PromptError(ValueError):
    """A request this model can't take (answered 400)."""

    def __init__(self, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict] | None) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise PromptError("This model has no chat template; use /v1/completions with a prompt instead.")
    rendered = [_template_message(message) for message in messages]
    text = tokenizer.apply_chat_template(
        rendered, tools=tools or None, add_generation_prompt=True, tokenize=False
    )
    if tools and text == tokenizer.apply_chat_template(rendered, add_generation_prompt=True, tokenize=False):
        # The template never mentions tools: the model would answer without knowing them. Say so
        # rather than answer as if it had been told.
        raise PromptError(
            "This model's chat template does not render tools, so the model would never see them; "
            "fine-tune from a base whose template supports tools, or describe them in a message.",
            code="tools_not_supported",
            param="tools",
        )
    # The template writes any special tokens (a BOS) itself, as it did for the training data.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def completion_prompt_ids(tokenizer: Any, prompt: str | list[int]) -> list[int]:
    if isinstance(prompt, list):
        return list(prompt)
    return list(tokenizer(prompt)["input_ids"])


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """The tokens that end an answer: the template's end of turn, the tokenizer's and the model's eos."""
    ids: list[int] = []
    end_of_turn = _end_of_turn_token(tokenizer)
    if end_of_turn is not None:
        ids.append(end_of_turn)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    generation_config = getattr(model, "generation_config", None)
    configured = getattr(generation_config, "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured] if configured is not None else []
    if not ids:
        ids = [
            tokenizer.convert_tokens_to_ids(token)
            for token in KNOWN_END_OF_TURN
            if token in tokenizer.get_vocab()
        ]
    return list(dict.fromkeys(ids))


def _end_of_turn_token(tokenizer: Any) -> int | None:
    """The special token the chat template writes right after an assistant message's content."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARK}], tokenize=False
        )
    except Exception:  # a template that insists on a system message, say: fall back to eos
        return None
    after = text.split(_MARK, 1)[-1] if _MARK in text else ""
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    if ids and ids[0] in set(tokenizer.all_special_ids):
        return int(ids[0])
    return None


def _template_message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI message as chat templates read it: text content, `system` for `developer`."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part["text"] for part in content)
    rendered = {
        "role": "system" if message["role"] == "developer" else message["role"],
        "content": content or "",
    }
    for key in ("name", "tool_call_id"):
        if message.get(key) is not None:
            rendered[key] = message[key]
    if message.get("tool_calls"):
        rendered["tool_calls"] = [_template_tool_call(call) for call in message["tool_calls"]]
    return rendered


def _template_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """OpenAI sends a call's arguments as a JSON string; chat templates (transformers' convention)
    render them from a dict, so a template writes `{"city": "Paris"}`, not a quoted string of it."""
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        # Not JSON: the template gets the text as the model wrote it.
        with contextlib.suppress(ValueError):
            function["arguments"] = json.loads(arguments)
    return {**call, "function": function}
