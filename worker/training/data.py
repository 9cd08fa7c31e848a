"""OpenAI fine-tuning JSONL -> tokenized examples whose labels train only the assistant's tokens.

Two input formats are accepted, both as OpenAI documents them:
  chat               {"messages": [{"role": ..., "content": ...}, ...], "tools": [...]}   (tools optional)
  prompt/completion  {"prompt": "...", "completion": "..."}  (read as one user turn, one assistant turn)

Loss masking does not rely on `{% generation %}` markers, which most chat templates lack. Instead each
assistant turn is located by rendering growing prefixes of the conversation: the turn's text is what
`render(messages[:i+1])` adds to `render(messages[:i], add_generation_prompt=True)`. That includes the
end-of-turn token the template writes after the content, which the model must learn in order to stop.
The full text is then tokenized once, and a token is trained when it starts inside an assistant span.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

IGNORE_INDEX = -100  # the label value that PyTorch's cross-entropy (and so transformers) skips

ROLES = ("system", "user", "assistant", "tool")


class DatasetError(ValueError):
    """A problem in a dataset file that the user has to fix; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None, purpose: str = "training"):
        self.line = line
        self.reason = message
        self.purpose = purpose  # "training" or "validation": which file of the job is at fault
        super().__init__(f"line {line}: {message}" if line is not None else message)


class ChatTemplateError(ValueError):
    """The base model's chat template cannot be used to find the assistant's tokens."""


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where the token gets no loss
    truncated: bool = False

    @property
    def n_trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass
class TokenizedDataset:
    """The usable examples of one file, and what was changed or left out on the way."""

    examples: list[TokenizedExample]
    n_read: int
    truncated_lines: list[int] = field(default_factory=list)
    dropped_lines: list[int] = field(default_factory=list)  # examples left with no trained token

    @property
    def n_tokens(self) -> int:
        """Tokens of one pass over the examples, after truncation: what one epoch bills."""
        return sum(len(example.input_ids) for example in self.examples)


# ---- reading and validating -------------------------------------------------------------------


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file into normalized chat examples; raise DatasetError naming the bad line.

    Each example also carries "line", its 1-based line number, so that later problems can name it.
    A UTF-8 byte-order mark, CRLF line ends and blank lines are accepted, as OpenAI accepts them.
    """
    examples = []
    for line_number, raw in read_jsonl(path):
        try:
            example = normalize_example(raw)
        except DatasetError as error:
            raise DatasetError(error.reason, line_number) from None
        example["line"] = line_number
        examples.append(example)
    return examples


def read_jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """The JSON values of a JSONL file with their 1-based line numbers; DatasetError on a bad line."""
    values = []
    with open(path, "rb") as lines:
        for line_number, line_bytes in enumerate(lines, start=1):
            try:
                # Decoded line by line so that a bad byte is reported with its line number.
                line = line_bytes.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DatasetError("not valid UTF-8 text", line_number) from None
            if not line.strip():
                continue
            try:
                values.append((line_number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise DatasetError(f"invalid JSON: {error.msg}", line_number) from None
    if not values:
        raise DatasetError("the file contains no examples")
    return values


def normalize_example(raw: Any) -> dict[str, Any]:
    """Validate one example and return it in chat form: {"messages": [...], "tools": [...]?}."""
    if not isinstance(raw, dict):
        raise DatasetError("each line must be a JSON object")
    if "messages" in raw:
        messages = raw["messages"]
    elif "prompt" in raw and "completion" in raw:
        if not isinstance(raw["prompt"], str) or not isinstance(raw["completion"], str):
            raise DatasetError("'prompt' and 'completion' must be strings")
        messages = [
            {"role": "user", "content": raw["prompt"]},
            {"role": "assistant", "content": raw["completion"]},
        ]
    else:
        raise DatasetError("an example needs a 'messages' list, or 'prompt' and 'completion' strings")
    if not isinstance(messages, list) or not messages:
        raise DatasetError("'messages' must be a non-empty list")

    normalized = [normalize_message(message, index) for index, message in enumerate(messages)]
    if not any(message["role"] == "assistant" for message in normalized):
        raise DatasetError("an example needs at least one assistant message")
    if normalized[0]["role"] == "assistant":
        raise DatasetError("the first message can't be an assistant message: nothing prompts it")

    example: dict[str, Any] = {"messages": normalized}
    tools = raw.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise DatasetError("'tools' must be a list")
        example["tools"] = tools
    return example


def normalize_message(message: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise DatasetError(f"{where} must be an object")
    role = message.get("role")
    if role not in ROLES:
        raise DatasetError(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
    normalized = dict(message)

    content = message.get("content")
    if isinstance(content, list):
        # OpenAI's content parts: only text can be trained on here, and templates expect a string.
        if not all(isinstance(part, dict) and part.get("type") == "text" for part in content):
            raise DatasetError(f"{where}.content may only hold text parts")
        normalized["content"] = "".join(str(part.get("text", "")) for part in content)
    elif content is None:
        if not (role == "assistant" and message.get("tool_calls")):
            raise DatasetError(f"{where}.content is missing")
    elif not isinstance(content, str):
        raise DatasetError(f"{where}.content must be a string")

    if "weight" in message:
        if role != "assistant":
            raise DatasetError(f"{where}.weight is only allowed on assistant messages")
        if message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            raise DatasetError(f"{where}.weight must be 0 or 1")

    if message.get("tool_calls") is not None:
        normalized["tool_calls"] = [_normalize_tool_call(call, where) for call in message["tool_calls"]]
    return normalized


def _normalize_tool_call(call: Any, where: str) -> Any:
    # OpenAI sends function arguments as a JSON string; Hugging Face chat templates expect a dict and
    # would otherwise render the string quoted a second time (`arguments | tojson`).
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise DatasetError(f"{where}.tool_calls entries need a 'function' object")
    arguments = call["function"].get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError:
            raise DatasetError(f"{where}.tool_calls function arguments are not valid JSON") from None
        call = {**call, "function": {**call["function"], "arguments": parsed}}
    return call


# ---- tokenizing --------------------------------------------------------------------------------


def tokenize_example(
    tokenizer: Any, example: dict[str, Any], max_seq_length: int | None = None
) -> TokenizedExample:
    """Tokenize one example with the tokenizer's chat template; labels train only assistant turns.

    Assistant messages with `"weight": 0` are rendered (they are context) but not trained. The result
    keeps the first `max_seq_length` tokens.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ChatTemplateError(
            "a fast tokenizer is needed: assistant tokens are found through character offsets"
        )
    if not tokenizer.chat_template:
        raise ChatTemplateError("the base model's tokenizer has no chat template")
    example = normalize_example(example)
    messages = [_for_template(message) for message in example["messages"]]
    tools = example.get("tools")

    full_text = _render(tokenizer, messages, tools, add_generation_prompt=False)
    spans = []
    for index, message in enumerate(example["messages"]):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        prompt_text = _render(tokenizer, messages[:index], tools, add_generation_prompt=True)
        turn_text = _render(tokenizer, messages[: index + 1], tools, add_generation_prompt=False)
        _require_prefix(prompt_text, turn_text, f"the prompt before message {index}", f"message {index}")
        _require_prefix(
            turn_text, full_text, f"the conversation up to message {index}", "the whole conversation"
        )
        spans.append((len(prompt_text), len(turn_text)))

    encoding = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    labels = [
        token_id if any(start <= token_start < end for start, end in spans) else IGNORE_INDEX
        for token_id, (token_start, _) in zip(input_ids, encoding["offset_mapping"], strict=True)
    ]
    truncated = max_seq_length is not None and len(input_ids) > max_seq_length
    if truncated:
        input_ids, labels = input_ids[:max_seq_length], labels[:max_seq_length]
    return TokenizedExample(input_ids=input_ids, labels=labels, truncated=truncated)


def tokenize_examples(
    tokenizer: Any, examples: Iterable[dict[str, Any]], max_seq_length: int | None = None
) -> TokenizedDataset:
    """Tokenize every example; drop (and record) those left with no trained token."""
    dataset = TokenizedDataset(examples=[], n_read=0)
    for position, example in enumerate(examples, start=1):
        dataset.n_read += 1
        line = example.get("line", position)
        try:
            tokenized = tokenize_example(tokenizer, example, max_seq_length)
        except DatasetError as error:
            raise DatasetError(error.reason, line) from None
        except jinja2.TemplateError as error:
            # Templates refuse conversations they can't express (e.g. roles that don't alternate) through
            # `raise_exception`, which is a fault of this example, not of the template.
            raise DatasetError(f"the chat template rejected this example: {error}", line) from None
        if tokenized.truncated:
            dataset.truncated_lines.append(line)
        if tokenized.n_trained_tokens == 0:
            dataset.dropped_lines.append(line)
            continue
        dataset.examples.append(tokenized)
    return dataset


def read_dataset(
    tokenizer: Any,
    path: str | Path,
    max_seq_length: int,
    purpose: str = "training",
    train_on_inputs: bool = False,
) -> TokenizedDataset:
    """Load and tokenize one file of a job; errors name the file's purpose ("training"/"validation").

    With `train_on_inputs`, every token of an example gets loss (system and user turns too), for
    data where the prompts themselves are worth learning; by default only the assistant's tokens do.
    """
    try:
        dataset = tokenize_examples(tokenizer, load_examples(path), max_seq_length)
        if train_on_inputs:
            dataset.examples = [
                TokenizedExample(example.input_ids, list(example.input_ids), example.truncated)
                for example in dataset.examples
            ]
        if not dataset.examples:
            raise DatasetError(
                f"no example has an assistant token left to train on within {max_seq_length} tokens"
            )
    except DatasetError as error:
        error.purpose = purpose
        raise
    return dataset


def tokenization_warnings(dataset: TokenizedDataset, file_label: str, max_seq_length: int) -> list[str]:
    """Human-readable warnings about what tokenization changed in a file."""
    warnings = []
    if dataset.truncated_lines:
        warnings.append(
            f"{len(dataset.truncated_lines)} {file_label} examples longer than max_seq_length "
            f"{max_seq_length} were truncated (lines {_line_list(dataset.truncated_lines)})"
        )
    if dataset.dropped_lines:
        warnings.append(
            f"{len(dataset.dropped_lines)} {file_label} examples have no assistant token left to train on "
            f"(all weight 0, or cut off by truncation) and were skipped "
            f"(lines {_line_list(dataset.dropped_lines)})"
        )
    return warnings


def _line_list(lines: list[int], shown: int = 10) -> str:
    text = ", ".join(str(line) for line in lines[:shown])
    return text + (f" and {len(lines) - shown} more" if len(lines) > shown else "")


def _for_template(message: dict[str, Any]) -> dict[str, Any]:
    # `weight` is ours to read, not the template's.
    return {key: value for key, value in message.items() if key != "weight"}


def _render(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[Any] | None, add_generation_prompt: bool
) -> str:
    text = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str):
        raise ChatTemplateError("the tokenizer's chat template did not render to text")
    return text


def _require_prefix(prefix: str, text: str, prefix_name: str, text_name: str) -> None:
    if not text.startswith(prefix):
        raise ChatTemplateError(
            f"the chat template is not prefix-stable: {prefix_name} does not render as the start of "
            f"{text_name}, so assistant tokens can't be located (templates that re-render earlier turns, "
            "e.g. dropping past reasoning, do this). Use a base model whose template renders earlier turns "
            "the same way, or put a training chat template in the model directory."
        )
