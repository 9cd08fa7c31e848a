"""How many tokens each training example is for a base model, and how many the model can take.

The worker's validation step passes `count` to api.files.validation.check_lines, which warns about
the examples longer than the context (the trainer truncates them, as OpenAI does). Examples are
rendered the way the trainer renders them (worker/training/data.py): chat, prompt/completion (one user
turn, one assistant turn) and preference examples through the model's chat template; classification
examples as their plain text. A preference example counts as its longer side: the prompt with the
preferred answer, or with the other. A reinforcement prompt counts as the prompt alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from api.files.validation import ExampleRejected
from catalog.formats.reinforcement import read_reinforcement
from worker.training.data import DatasetError, normalize_example, template_message

# Where Hugging Face configs keep the number of positions a model was trained for, by model family;
# multimodal models keep it in their text_config.
CONTEXT_LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_sequence_length",
    "seq_length",
    "n_ctx",
    "max_seq_len",
)
# What transformers puts in model_max_length when the tokenizer does not know it (int(1e30)).
_UNKNOWN_MODEL_MAX_LENGTH = 10**9


def example_token_counter(model_dir: str | Path) -> tuple[Callable[[dict[str, Any]], int], int]:
    """(count, context_length) for the model in `model_dir`, read offline from its files.

    `count(example)` takes an example that check_lines accepted and returns its number of tokens; it
    raises ExampleRejected when the chat template refuses the example (e.g. roles that don't
    alternate). `context_length` comes from config.json, or else from the tokenizer's
    model_max_length; ValueError when neither says.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    context_length = _context_length(Path(model_dir), tokenizer)

    def n_tokens(text: str, *, special_tokens: bool = False) -> int:
        return len(tokenizer(text, add_special_tokens=special_tokens)["input_ids"])

    def chat_tokens(messages: list[Any], tools: Any) -> int:
        try:
            chat = {"messages": messages} if tools is None else {"messages": messages, "tools": tools}
            example = normalize_example(chat)
            return n_tokens(_render(tokenizer, example))
        except DatasetError as exc:
            raise ExampleRejected(exc.reason) from None
        except jinja2.TemplateError as exc:
            raise ExampleRejected(f"the model's chat template rejected this example: {exc}") from None
        except RecursionError:
            raise ExampleRejected("is nested too deeply for the model's chat template") from None

    def prompt_tokens(example: dict[str, Any]) -> int:
        # A reinforcement prompt: no answer to render; the model's is generated during training.
        prompt, problems = read_reinforcement(example)
        if prompt is None:
            raise ExampleRejected(problems[0])
        messages = [template_message(message) for message in prompt.messages]
        tools = [tool.definition for tool in prompt.tools] if prompt.tools else None
        try:
            return n_tokens(_render(tokenizer, {"messages": messages, "tools": tools}))
        except jinja2.TemplateError as exc:
            raise ExampleRejected(f"the model's chat template rejected this example: {exc}") from None

    def count(example: dict[str, Any]) -> int:
        if "messages" in example and not any(
            isinstance(turn, dict) and turn.get("role") == "assistant" for turn in example["messages"]
        ):
            return prompt_tokens(example)
        if "messages" in example:
            return chat_tokens(example["messages"], example.get("tools"))
        if "input" in example:
            prompt = example["input"]["messages"]
            tools = example["input"].get("tools")
            return max(
                chat_tokens(prompt + example["preferred_output"], tools),
                chat_tokens(prompt + example["non_preferred_output"], tools),
            )
        if "prompt" in example:
            user = {"role": "user", "content": example["prompt"]}
            return chat_tokens([user, {"role": "assistant", "content": example["completion"]}], None)
        # Classification: the text alone, with the special tokens a sequence classifier adds.
        return n_tokens(example["text"], special_tokens=True)

    return count, context_length


def _render(tokenizer: Any, example: dict[str, Any]) -> str:
    # `weight` is the trainer's to read, not the template's.
    messages = [{k: v for k, v in message.items() if k != "weight"} for message in example["messages"]]
    if not tokenizer.chat_template:
        # The trainer refuses such a model; an estimate is enough to validate the file.
        return "\n".join(f"{message['role']}: {message.get('content') or ''}" for message in messages)
    text = tokenizer.apply_chat_template(messages, tools=example.get("tools"), tokenize=False)
    return text if isinstance(text, str) else str(text)


def _context_length(model_dir: Path, tokenizer: Any) -> int:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    for section in (config, config.get("text_config") or {}):
        for key in CONTEXT_LENGTH_KEYS:
            value = section.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    model_max_length = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max_length, int) and 0 < model_max_length < _UNKNOWN_MODEL_MAX_LENGTH:
        return model_max_length
    raise ValueError(
        f"{model_dir}: neither config.json ({', '.join(CONTEXT_LENGTH_KEYS)}) nor the tokenizer's "
        "model_max_length says how long the model's context is"
    )
