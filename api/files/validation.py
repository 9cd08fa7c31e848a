"""Dataset validation: OpenAI's JSONL training formats, checked line by line.

Pure functions over lines of bytes, so the upload endpoint and the worker's validation task run the
same rules. Problems name the line and the field ("line 37: messages[2].role must be one of ...");
the first several are reported, not only the first.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
MIN_EXAMPLES = 10
MAX_REPORTED_PROBLEMS = 10

CHAT = "chat"
PROMPT_COMPLETION = "prompt_completion"
PREFERENCE = "preference"
# Which formats each fine-tuning method trains on.
FORMATS_BY_METHOD = {"supervised": (CHAT, PROMPT_COMPLETION), "dpo": (PREFERENCE,)}


@dataclass
class DatasetReport:
    n_examples: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    n_bad_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.n_bad_lines == 0

    def add_problems(self, line_no: int, problems: list[str]) -> None:
        self.n_bad_lines += 1
        for problem in problems:
            if len(self.problems) < MAX_REPORTED_PROBLEMS:
                self.problems.append(f"line {line_no}: {problem}")

    def summary(self) -> str:
        """One message: how many lines are bad, then the first problems found."""
        return f"{self.n_bad_lines} invalid line(s): " + "; ".join(self.problems)


@dataclass(frozen=True)
class DatasetIssue:
    """A dataset-level failure, with the error code OpenAI uses for it."""

    code: str
    message: str


def check_lines(lines: Iterable[bytes]) -> DatasetReport:
    """Check every line; blank lines (a trailing newline, CRLF leftovers) are skipped."""
    report = DatasetReport()
    for line_no, raw in enumerate(lines, start=1):
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        example, problems = _parse_line(raw)
        if problems:
            report.add_problems(line_no, problems)
            continue
        report.n_examples += 1
        report.formats[example_format(example)] += 1
    return report


def check_dataset(report: DatasetReport, method: str) -> DatasetIssue | None:
    """Dataset-level rules, applied when a job is validated."""
    if not report.ok:
        return DatasetIssue("invalid_training_file", report.summary())
    if report.n_examples < MIN_EXAMPLES:
        return DatasetIssue(
            "invalid_n_examples",
            f"Training file has {report.n_examples} example(s), "
            f"but must have at least {MIN_EXAMPLES} examples",
        )
    wanted = FORMATS_BY_METHOD[method]
    wrong = {fmt: n for fmt, n in report.formats.items() if fmt not in wanted}
    if wrong:
        found = ", ".join(f"{n} {fmt}" for fmt, n in wrong.items())
        return DatasetIssue(
            "invalid_training_file",
            f"The {method} method trains on {' or '.join(wanted)} examples, "
            f"but the file has {found} example(s)",
        )
    return None


def example_format(example: dict[str, Any]) -> str:
    if "messages" in example:
        return CHAT
    if "preferred_output" in example or "non_preferred_output" in example:
        return PREFERENCE
    return PROMPT_COMPLETION


def _parse_line(raw: bytes) -> tuple[dict[str, Any], list[str]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, [f"is not valid UTF-8 (byte {exc.start})"]
    try:
        example = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, [f"is not valid JSON ({exc.msg} at column {exc.colno})"]
    except RecursionError:
        return {}, ["is nested too deeply"]
    if not isinstance(example, dict):
        return {}, [f"must be a JSON object, not {_json_type(example)}"]
    if "messages" in example:
        return example, _check_chat(example)
    if "prompt" in example or "completion" in example:
        return example, _check_prompt_completion(example)
    if "input" in example or "preferred_output" in example or "non_preferred_output" in example:
        return example, _check_preference(example)
    return example, [
        "must have 'messages' (chat format), 'prompt' and 'completion' (prompt/completion format), or "
        "'input', 'preferred_output' and 'non_preferred_output' (preference format)"
    ]


def _check_chat(example: dict[str, Any]) -> list[str]:
    problems = _check_messages(example["messages"], "messages")
    if "tools" in example and not isinstance(example["tools"], list):
        problems.append("tools must be a list")
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        problems.append("parallel_tool_calls must be true or false")
    if not problems and not any(
        m["role"] == "assistant" and m.get("weight", 1) == 1 for m in example["messages"]
    ):
        problems.append("messages has no assistant message to learn from (one with weight 1)")
    return problems


def _check_messages(messages: Any, where: str, *, roles: tuple[str, ...] = ROLES) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return [f"{where} must be a non-empty list of messages"]
    problems: list[str] = []
    for index, message in enumerate(messages):
        problems += _check_message(message, f"{where}[{index}]", roles)
    return problems


def _check_message(message: Any, where: str, roles: tuple[str, ...]) -> list[str]:
    if not isinstance(message, dict):
        return [f"{where} must be an object with 'role' and 'content'"]
    problems = [f"{where} has unrecognized key '{key}'" for key in message if key not in MESSAGE_KEYS]
    role = message.get("role")
    if role is None:
        problems.append(f"{where}.role is missing")
    elif role not in roles:
        problems.append(f"{where}.role must be one of {', '.join(roles)}")
    content = message.get("content")
    has_tool_calls = bool(message.get("tool_calls") or message.get("function_call"))
    if content is None:
        if not (role == "assistant" and has_tool_calls):
            problems.append(f"{where}.content is missing")
    elif not isinstance(content, str):
        problems.append(f"{where}.content must be a string")
    if "tool_calls" in message and not isinstance(message["tool_calls"], list):
        problems.append(f"{where}.tool_calls must be a list")
    if "weight" in message:
        if role != "assistant":
            problems.append(f"{where}.weight is only allowed on assistant messages")
        elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            problems.append(f"{where}.weight must be 0 or 1")
    return problems


def _check_prompt_completion(example: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("prompt", "completion"):
        if key not in example:
            problems.append(f"{key} is missing")
        elif not isinstance(example[key], str):
            problems.append(f"{key} must be a string")
    if not problems and not example["completion"].strip():
        problems.append("completion is empty")
    return problems


def _check_preference(example: dict[str, Any]) -> list[str]:
    problems = []
    source = example.get("input")
    if not isinstance(source, dict):
        problems.append("input must be an object with 'messages'")
    else:
        problems += _check_messages(source.get("messages"), "input.messages")
    for key in ("preferred_output", "non_preferred_output"):
        if key not in example:
            problems.append(f"{key} is missing")
        else:
            problems += _check_messages(example[key], key, roles=("assistant",))
    return problems


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
