"""OpenAI fine-tuning JSONL -> tokenized examples whose labels train only the assistant's tokens.

Files are read through catalog.formats, as the API validates them: a line the API accepts is read
here the same way, and a line it refuses is refused here in the same words (a DatasetError naming the
line). Supervised training reads two formats:
  chat               {"messages": [{"role": ..., "content": ...}, ...], "tools": [...]}   (tools optional)
  prompt/completion  {"prompt": "...", "completion": "..."}  (read as one user turn, one assistant turn)
Beyond validation, examples are put in the form chat templates take: text content parts joined into
a string, tool-call arguments parsed from their JSON string into a value.

Loss masking does not rely on `{% generation %}` markers, which most chat templates lack. Instead each
assistant turn is located by rendering growing prefixes of the conversation: the turn's text is what
`render(messages[:i+1])` adds to `render(messages[:i], add_generation_prompt=True)`. That includes the
end-of-turn token the template writes after the content, which the model must learn in order to stop.
A conversation may start with the assistant (a bot that greets first): that turn's prompt is what the
template writes for no messages at all. The full text is then tokenized once, and a token is trained
when it starts inside an assistant span.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from catalog.formats import (
    FORMATS_BY_METHOD,
    ChatExample,
    Example,
    FileReader,
    Message,
    PromptCompletionExample,
    ToolCall,
    not_an_object,
    read_example,
    reading_formats,
    wrong_format,
)

IGNORE_INDEX = -100  # the label value that PyTorch's cross-entropy (and so transformers) skips


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


class NormalizedExample(dict[str, Any]):
    """A supervised example in chat form, as normalize_example returns it: {"messages", "tools"?}, and
    from load_examples also "line". Marked by its class because it no longer reads as OpenAI's format
    (tool-call arguments are values, not strings of JSON): normalizing it again returns it as it is."""


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file into normalized chat examples; raise DatasetError naming the bad line.

    Each example also carries "line", its 1-based line number, so that later problems can name it.
    A UTF-8 byte-order mark, CRLF line ends and blank lines are accepted, as OpenAI accepts them.
    """
    examples: list[dict[str, Any]] = []
    for line_number, example in read_examples(path, "supervised"):
        assert isinstance(example, ChatExample | PromptCompletionExample)
        normalized = chat_form(example)
        normalized["line"] = line_number
        examples.append(normalized)
    return examples


def read_examples(path: str | Path, method: str) -> list[tuple[int, Example]]:
    """The typed examples of a file for `method`, with their 1-based line numbers.

    DatasetError names the first bad line, with the first problem the API reports for it; or the first
    line in a format that `method` does not train on (after the line's own problems, as the API checks
    a job's files); or says that the file has no examples.
    """
    reader = FileReader(reading_formats(method))
    wanted = FORMATS_BY_METHOD[method]
    examples: list[tuple[int, Example]] = []
    with open(path, "rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            line = reader.read(line_number, raw)
            if line is None:
                continue
            if line.example is None or line.format is None:
                raise DatasetError(line.problems[0], line_number)
            if line.format not in wanted:
                raise DatasetError(wrong_format(method, line.format), line_number)
            examples.append((line_number, line.example))
    if not examples:
        raise DatasetError("the file contains no examples")
    return examples


def read_jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """The JSON objects of a file whose every line is a valid example (of any one format), with their
    1-based line numbers; DatasetError on a bad line."""
    reader = FileReader()
    values = []
    with open(path, "rb") as lines:
        for line_number, raw in enumerate(lines, start=1):
            line = reader.read(line_number, raw)
            if line is not None:
                if line.example is None:
                    raise DatasetError(line.problems[0], line_number)
                values.append((line_number, line.json))
    if not values:
        raise DatasetError("the file contains no examples")
    return values


def normalize_example(raw: Any) -> dict[str, Any]:
    """Check one chat or prompt/completion example as the API does; return it in chat form:
    {"messages": [...], "tools": [...]?}. An example normalized before is returned as it is.

    An example in another format is refused for that first: what is wrong with it as, say, a
    classification example says little to someone who meant a chat example.
    """
    if isinstance(raw, NormalizedExample):
        return raw
    if not isinstance(raw, dict):
        raise DatasetError(not_an_object(raw))
    example, fmt, problems = read_example(raw)
    if fmt is not None and fmt not in FORMATS_BY_METHOD["supervised"]:
        raise DatasetError(wrong_format("supervised", fmt))
    if not isinstance(example, ChatExample | PromptCompletionExample):
        raise DatasetError(problems[0])
    return chat_form(example)


def chat_form(example: ChatExample | PromptCompletionExample) -> NormalizedExample:
    """A valid supervised example as chat templates take it."""
    if isinstance(example, PromptCompletionExample):
        return NormalizedExample(
            messages=[
                {"role": "user", "content": example.prompt},
                {"role": "assistant", "content": example.completion},
            ]
        )
    normalized = NormalizedExample(messages=[template_message(message) for message in example.messages])
    if example.tools is not None:
        normalized["tools"] = [tool.definition for tool in example.tools]
    return normalized


def template_message(message: Message) -> dict[str, Any]:
    """A valid message as chat templates take it: content one string, tool-call arguments a value.

    Fields that are absent or null are left out, as transformers drops them before rendering anyway.
    `weight` stays, for the trainer to read (it is taken out before rendering).
    """
    normalized: dict[str, Any] = {"role": message.role}
    if message.content is not None:
        normalized["content"] = message.text
    for key in ("name", "refusal", "tool_call_id", "function_call", "weight"):
        value = getattr(message, key)
        if value is not None:
            normalized[key] = value
    if message.tool_calls is not None:
        normalized["tool_calls"] = [_template_tool_call(call) for call in message.tool_calls]
    return normalized


def _template_tool_call(call: ToolCall) -> dict[str, Any]:
    # OpenAI sends function arguments as a JSON string; Hugging Face chat templates expect a value and
    # would otherwise render the string quoted a second time (`arguments | tojson`).
    function = {"name": call.function.name, "arguments": call.function.parsed_arguments()}
    if call.id is None:
        return {"type": call.type, "function": function}
    return {"id": call.id, "type": call.type, "function": function}


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
        turn_text = _render(tokenizer, messages[: index + 1], tools, add_generation_prompt=False)
        if index:
            prompt_text = _render(tokenizer, messages[:index], tools, add_generation_prompt=True)
        else:
            prompt_text = _empty_prompt(tokenizer, tools, turn_text)
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


def _empty_prompt(tokenizer: Any, tools: list[Any] | None, first_turn: str) -> str:
    """What the template writes before a first message of the assistant's (a BOS token, a default
    system prompt, the assistant's header): render([], add_generation_prompt=True).

    tokenizer.apply_chat_template refuses an empty conversation, so the template is rendered the way
    apply_chat_template renders it. A template that can't render no messages, or renders something
    else than the start of the first turn, gives no prompt: the whole first turn is trained.
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        # Annotated as returning a string, it returns (the rendered conversations, generation indices).
        rendered: Any = render_jinja_template(
            conversations=[[]],
            tools=tools,
            chat_template=tokenizer.get_chat_template(None, tools),
            add_generation_prompt=True,
            **tokenizer.special_tokens_map,
        )
    except (jinja2.TemplateError, TypeError, ValueError):  # TemplateError: the template's raise_exception
        return ""
    prompt = rendered[0][0]
    return prompt if isinstance(prompt, str) and first_turn.startswith(prompt) else ""


def _require_prefix(prefix: str, text: str, prefix_name: str, text_name: str) -> None:
    if not text.startswith(prefix):
        raise ChatTemplateError(
            f"the chat template is not prefix-stable: {prefix_name} does not render as the start of "
            f"{text_name}, so assistant tokens can't be located (templates that re-render earlier turns, "
            "e.g. dropping past reasoning, do this). Use a base model whose template renders earlier turns "
            "the same way, or put a training chat template in the model directory."
        )
