"""Dataset validation: OpenAI's JSONL training formats, checked line by line.

Pure functions over lines of bytes, so the upload endpoint and the worker's validation task run the
same rules. Problems name the line and the field ("line 37: messages[2].role must be one of ...");
the first several are reported, not only the first, with the total count.

The file is read as a stream: one line is parsed and checked at a time, and the report keeps only
counts, the first problems and the label set, so a large file costs no more memory than its longest
line. Uploads bound that too: `read_lines` never holds more of a line than the line limit, and
check_lines refuses a longer line and stops at the line-count limit (TUNERY_MAX_LINE_BYTES,
TUNERY_MAX_LINES), so a hostile file (one 500 MB line, millions of empty lines) costs bounded memory
and time. Within a line, every check is linear in its size: parsing a line of JSON costs up to about
25 times its bytes in memory (a list of millions of empty objects), which the line limit bounds.

Formats (one per file; a line in another format is an error naming it):
  chat               {"messages": [...], "tools": [...]?, "parallel_tool_calls": bool?}
  prompt/completion  {"prompt": str, "completion": str}
  preference (DPO)   {"input": {"messages": [...], "tools": [...]?}, "preferred_output": [assistant message],
                      "non_preferred_output": [assistant message]}
  classification     {"text": str, "label": str | int | bool}   (Tunery's extension; labels are str(label))

Decisions beyond OpenAI's published rules, each because the trainer would otherwise fail later or
train on something else than the author meant:
  - content may be a string or a list of text parts ({"type": "text", "text": ...}), which the trainer
    joins; other parts (images, audio) are refused, as only text is trained here.
  - NaN and Infinity, which Python's json accepts, are refused: they are not JSON, and OpenAI refuses
    them. So are duplicated keys in one object (which value wins differs between parsers), unpaired
    surrogate escapes ("\\ud800", which no tokenizer can encode), and a byte-order mark after line 1.
  - a chat example can't start with an assistant message (the trainer refuses it: nothing prompts it);
    a tool message must answer a tool call made earlier in the example.
  - an example longer than the model's context is a warning, not an error: like OpenAI, the trainer
    truncates it. Token counting is a hook (`count_tokens`), since the API side has no tokenizer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
MIN_EXAMPLES = 10
MAX_REPORTED_PROBLEMS = 10
# A problem can quote a key of the example, which may be megabytes long: the report stays readable.
MAX_PROBLEM_CHARS = 500
# A classifier gets one output per label: thousands of labels are a mistake (a free-text column used as
# the label), and the cap keeps the label set's memory bounded whatever the file holds.
MAX_LABELS = 1000
MAX_LABEL_CHARS = 256

CHAT = "chat"
PROMPT_COMPLETION = "prompt_completion"
PREFERENCE = "preference"
CLASSIFICATION = "classification"
# Which formats each fine-tuning method trains on.
FORMATS_BY_METHOD = {
    "supervised": (CHAT, PROMPT_COMPLETION),
    "dpo": (PREFERENCE,),
    "classification": (CLASSIFICATION,),
}
FORMAT_NAMES = {
    CHAT: "chat",
    PROMPT_COMPLETION: "prompt/completion",
    PREFERENCE: "preference",
    CLASSIFICATION: "classification",
}
# The top-level keys that say which format an example is in.
FORMAT_KEYS = {
    CHAT: ("messages",),
    PROMPT_COMPLETION: ("prompt", "completion"),
    PREFERENCE: ("input", "preferred_output", "non_preferred_output"),
    CLASSIFICATION: ("text", "label"),
}

TokenCounter = Callable[[dict[str, Any]], int]
"""Counts the tokens of one valid example as the trainer will see it (see worker/context_length.py)."""


class ExampleRejected(ValueError):
    """Raised by a token counter when the model can't render an example at all (its chat template
    refuses it); check_lines reports the message as a problem of that line."""


@dataclass
class DatasetReport:
    n_examples: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # the first MAX_REPORTED_PROBLEMS, "line N: ..."
    n_bad_lines: int = 0
    n_problems: int = 0  # all problems found, reported or not
    # Classification: examples per label, keyed by str(label).
    labels: Counter[str] = field(default_factory=Counter)
    # Not errors: what training will change (examples it truncates). The first MAX_REPORTED_PROBLEMS.
    warnings: list[str] = field(default_factory=list)
    n_warnings: int = 0
    # Filled only when check_lines is given a token counter.
    n_tokens: int = 0  # all valid examples together, before truncation
    max_example_tokens: int = 0
    n_long_examples: int = 0  # longer than max_tokens
    # The file's format and the line that decided it: the first line whose format could be told.
    file_format: str | None = None
    file_format_line: int = 0

    @property
    def ok(self) -> bool:
        return self.n_bad_lines == 0

    @property
    def label_names(self) -> list[str]:
        """Classification: the distinct labels, sorted."""
        return sorted(self.labels)

    def add_problems(self, line_no: int, problems: list[str]) -> None:
        self.n_bad_lines += 1
        self.n_problems += len(problems)
        for problem in problems:
            if len(self.problems) < MAX_REPORTED_PROBLEMS:
                self.problems.append(_clip(f"line {line_no}: {problem}"))

    def add_warning(self, line_no: int, warning: str) -> None:
        self.n_warnings += 1
        if len(self.warnings) < MAX_REPORTED_PROBLEMS:
            self.warnings.append(f"line {line_no}: {warning}")

    def summary(self) -> str:
        """One message: how many lines are bad, then the first problems found."""
        return (
            f"{self.n_bad_lines} invalid line(s): "
            + "; ".join(self.problems)
            + _more(self.n_problems, len(self.problems), "problem")
        )

    def warning_summary(self) -> str | None:
        """One message for the job's events, or None when there is nothing to warn about."""
        if not self.n_warnings:
            return None
        return (
            f"{self.n_warnings} warning(s): "
            + "; ".join(self.warnings)
            + _more(self.n_warnings, len(self.warnings), "warning")
        )


@dataclass(frozen=True)
class DatasetIssue:
    """A dataset-level failure, with the error code OpenAI uses for it."""

    code: str
    message: str


def read_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[bytes]:
    """The stream's lines, newlines kept, in memory bounded by `max_line_bytes`.

    A line longer than the limit is yielded cut to max_line_bytes + 1 bytes (so check_lines, given the
    same limit, reports it) and the rest of it is read past in chunks, never held whole: iterating a
    file object instead would read a 500 MB line with no newline into memory at once.
    """
    while raw := stream.readline(max_line_bytes + 1):
        if not raw.endswith(b"\n"):  # cut at the limit, or the file's last line
            while (rest := stream.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                pass
        yield raw


_SKIP_CHUNK = 1024 * 1024


def check_lines(
    lines: Iterable[bytes],
    *,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    limit_name: str = "the model's context",
    max_line_bytes: int | None = None,
    max_lines: int | None = None,
) -> DatasetReport:
    """Check every line; blank lines (a trailing newline, CRLF leftovers) are skipped.

    With `count_tokens`, each valid example is counted (report.n_tokens, max_example_tokens), and one
    longer than `max_tokens` is a warning: "line N: example is X tokens, longer than {limit_name} of Y
    tokens". A counter that raises ExampleRejected makes that line a problem.

    A line longer than `max_line_bytes` (its newline included) is a problem, not parsed; past
    `max_lines` lines (blank ones included) reading stops with a problem. The messages name the settings
    the API takes these limits from. A file whose first bytes say it is not UTF-8 text at all (gzip,
    zip, UTF-16) is one problem, and the rest of it is not read.
    """
    report = DatasetReport()
    for line_no, raw in enumerate(lines, start=1):
        if max_lines is not None and line_no > max_lines:
            report.add_problems(
                line_no, [f"the file has more than {max_lines} lines, the limit (TUNERY_MAX_LINES)"]
            )
            break
        if line_no == 1:
            not_text = _not_text(raw)
            if not_text:
                report.add_problems(line_no, [not_text])
                break
        if max_line_bytes is not None and len(raw) > max_line_bytes:
            report.add_problems(
                line_no,
                [f"is longer than {max_line_bytes} bytes, the limit of a line (TUNERY_MAX_LINE_BYTES)"],
            )
            continue
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        example, fmt, problems = _parse_line(raw)
        if fmt is not None:
            if report.file_format is None:
                report.file_format, report.file_format_line = fmt, line_no
            elif fmt != report.file_format:
                problems.append(
                    f"is a {FORMAT_NAMES[fmt]} example, but line {report.file_format_line} is a "
                    f"{FORMAT_NAMES[report.file_format]} example: a file holds examples of one format"
                )
        if fmt == CLASSIFICATION and not problems:
            problems += _label_problems(report, str(example["label"]))
        if count_tokens is not None and not problems:
            try:
                n_tokens = count_tokens(example)
            except ExampleRejected as exc:
                problems.append(str(exc))
            else:
                report.n_tokens += n_tokens
                report.max_example_tokens = max(report.max_example_tokens, n_tokens)
                if max_tokens is not None and n_tokens > max_tokens:
                    report.n_long_examples += 1
                    report.add_warning(
                        line_no,
                        f"example is {n_tokens} tokens, longer than {limit_name} of {max_tokens} tokens "
                        "(training truncates it)",
                    )
        if problems:
            report.add_problems(line_no, problems)
            continue
        assert fmt is not None
        report.n_examples += 1
        report.formats[fmt] += 1
        if fmt == CLASSIFICATION:
            report.labels[str(example["label"])] += 1
    return report


def check_dataset(
    report: DatasetReport,
    method: str,
    *,
    purpose: str = "training",
    training: DatasetReport | None = None,
) -> DatasetIssue | None:
    """Dataset-level rules, applied when a job is validated.

    `purpose` is "training" or "validation": it picks the error code (invalid_training_file,
    invalid_validation_file) and the minimum number of examples (10 for training, 1 for validation).
    For a validation file, pass the training file's report as `training`: a classification label that
    no training example has is an error.
    """
    code = f"invalid_{purpose}_file"
    if not report.ok:
        return DatasetIssue(code, report.summary())
    if purpose == "training" and report.n_examples < MIN_EXAMPLES:
        return DatasetIssue(
            "invalid_n_examples",
            f"Training file has {report.n_examples} example(s), "
            f"but must have at least {MIN_EXAMPLES} examples",
        )
    if report.n_examples == 0:
        return DatasetIssue(code, f"The {purpose} file has no examples")
    wanted = FORMATS_BY_METHOD[method]
    wrong = {fmt: n for fmt, n in report.formats.items() if fmt not in wanted}
    if wrong:
        found = ", ".join(f"{n} {FORMAT_NAMES[fmt]}" for fmt, n in wrong.items())
        return DatasetIssue(
            code,
            f"The {method} method trains on {' or '.join(FORMAT_NAMES[fmt] for fmt in wanted)} examples, "
            f"but the {purpose} file has {found} example(s)",
        )
    if method == "classification":
        if purpose == "training" and len(report.labels) < 2:
            found = f"only the label {report.label_names[0]!r}" if report.labels else "no labels"
            return DatasetIssue(
                code, f"The classification method needs at least 2 distinct labels, but the file has {found}"
            )
        if training is not None:
            unseen = sorted(set(report.labels) - set(training.labels))
            if unseen:
                return DatasetIssue(
                    code,
                    f"The validation file has {len(unseen)} label(s) that no training example has: "
                    + ", ".join(repr(label) for label in unseen[:MAX_REPORTED_PROBLEMS]),
                )
    return None


def example_format(example: dict[str, Any]) -> str:
    """The format of a valid example (one that check_lines accepted)."""
    for fmt in (CHAT, PREFERENCE, CLASSIFICATION):
        if any(key in example for key in FORMAT_KEYS[fmt]):
            return fmt
    return PROMPT_COMPLETION


# ---- one line ----------------------------------------------------------------------------------


class _NotJSON(ValueError):
    """A literal that Python's json accepts but JSON does not (NaN, Infinity)."""


def _reject_constant(name: str) -> Any:
    raise _NotJSON(name)


# A JSON string escape of a UTF-16 surrogate; only when the raw line has one is the parsed example
# searched for an unpaired one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# What a file uploaded as JSONL by mistake starts with. Reading such a file line by line would report
# pages of invalid UTF-8 and say nothing useful; its first bytes say what it is.
_NOT_TEXT = (
    ((b"\xff\xfe", b"\xfe\xff"), "the file is UTF-16 text; save it as UTF-8"),
    ((b"\x1f\x8b",), "the file is gzip-compressed; upload the uncompressed JSONL file"),
    ((b"PK\x03\x04", b"PK\x05\x06"), "the file is a zip archive; upload the JSONL file it holds"),
    ((b"BZh",), "the file is bzip2-compressed; upload the uncompressed JSONL file"),
    ((b"\xfd7zXZ\x00",), "the file is xz-compressed; upload the uncompressed JSONL file"),
    ((b"\x28\xb5\x2f\xfd",), "the file is zstd-compressed; upload the uncompressed JSONL file"),
    ((b"7z\xbc\xaf\x27\x1c",), "the file is a 7z archive; upload the JSONL file it holds"),
)


def _not_text(first_line: bytes) -> str | None:
    """The problem with a file whose first bytes show it is not UTF-8 text, or None."""
    for signatures, problem in _NOT_TEXT:
        if first_line.startswith(signatures):
            return problem
    return None


def _parse_line(raw: bytes) -> tuple[dict[str, Any], str | None, list[str]]:
    """The example, its format (None when it can't be told) and the line's problems."""
    if b"\x00" in raw:
        # JSON has no place for a raw NUL byte; text with them is binary or UTF-16 without a BOM.
        return (
            {},
            None,
            [
                f"has a NUL byte (byte {raw.index(0)}): the file is binary, or UTF-16 without a byte-order "
                "mark; upload UTF-8 JSON Lines"
            ],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, None, [f"is not valid UTF-8 (byte {exc.start})"]
    if text.startswith("\ufeff"):
        return {}, None, ["starts with a byte-order mark (U+FEFF); only the file's first line may"]
    duplicated: list[str] = []

    def build_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            # Counted in one pass: list.count per key is quadratic, and a line can hold 500,000 keys.
            counts = Counter(key for key, _ in pairs)
            duplicated.extend(key for key, n in counts.items() if n > 1)
        return obj

    try:
        example = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=build_object)
    except _NotJSON as exc:
        return {}, None, [f"is not valid JSON ({exc} is not a JSON value; write a number, a string or null)"]
    except json.JSONDecodeError as exc:
        return {}, None, [f"is not valid JSON ({exc.msg} at column {exc.colno})" + _layout_hint(text)]
    except RecursionError:
        return {}, None, ["is nested too deeply (arrays and objects more than about 1,000 levels deep)"]
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return {}, None, [f"is not valid JSON ({exc})"]
    if not isinstance(example, dict):
        return {}, None, [f"must be a JSON object, not {_json_type(example)}" + _array_hint(example)]
    problems = [f"has the key {key!r} more than once in one object" for key in dict.fromkeys(duplicated)]
    if _SURROGATE_ESCAPE.search(raw):
        problems += _unpaired_surrogates(example)
    present = [fmt for fmt, keys in FORMAT_KEYS.items() if any(key in example for key in keys)]
    if not present:
        return (
            example,
            None,
            [
                *problems,
                "must have 'messages' (chat format), 'prompt' and 'completion' (prompt/completion format), "
                "'input', 'preferred_output' and 'non_preferred_output' (preference format), or 'text' and "
                "'label' (classification format)",
            ],
        )
    if len(present) > 1:
        keys = " and ".join(f"{FORMAT_NAMES[fmt]} key(s) {_present_keys(example, fmt)}" for fmt in present)
        return example, None, [*problems, f"mixes {keys}: an example is in one format"]
    fmt = present[0]
    return example, fmt, problems + _CHECKS[fmt](example)


def _layout_hint(text: str) -> str:
    stripped = text.strip()
    if stripped == "[":
        return "; the file looks like one JSON array: write one example per line (JSON Lines)"
    if stripped == "{":
        return "; the file looks like pretty-printed JSON: write each example on one line (JSON Lines)"
    return ""


def _array_hint(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return " (write one example per line, not an array of examples)"
    return ""


def _present_keys(example: dict[str, Any], fmt: str) -> str:
    return ", ".join(repr(key) for key in FORMAT_KEYS[fmt] if key in example)


def _unpaired_surrogates(example: dict[str, Any]) -> list[str]:
    """The first MAX_REPORTED_PROBLEMS values (and keys) with an unpaired surrogate, in document order.

    Iterative, as the example may be nested as deeply as json allows. The path is a stack of parts,
    rendered only for a problem: a path string made for every value would cost the number of values
    times the path's length (a 2 MB key over a list of a million numbers: terabytes).
    """
    problems: list[str] = []
    n_more = 0

    def found(parts: list[str], problem: str) -> None:
        nonlocal n_more
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append(f"{_path(parts)} {problem}")
        else:
            n_more += 1

    if not all(_encodable(key) for key in example):
        found([], "has a key with an unpaired surrogate escape")
    path: list[str] = []  # the part of each container entered, one fewer than the iterators below
    members: list[Iterator[tuple[str, Any]]] = [_members(example)]
    while members:
        member = next(members[-1], None)
        if member is None:
            members.pop()
            if path:
                path.pop()
            continue
        part, value = member
        if isinstance(value, dict | list):
            path.append(part)
            if isinstance(value, dict) and not all(_encodable(key) for key in value):
                found(path, "has a key with an unpaired surrogate escape")
            members.append(_members(value))
        elif isinstance(value, str) and not _encodable(value):
            found([*path, part], "has an unpaired surrogate escape (\\ud800-\\udfff): not valid Unicode")
    if n_more:
        problems.append(f"{n_more} more value(s) have an unpaired surrogate escape")
    return problems


def _members(value: dict[str, Any] | list[Any]) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        return ((f".{key}", item) for key, item in value.items())
    return ((f"[{index}]", item) for index, item in enumerate(value))


def _path(parts: list[str]) -> str:
    return "".join(parts).removeprefix(".") or "the example"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---- the formats -------------------------------------------------------------------------------


def _check_chat(example: dict[str, Any]) -> list[str]:
    messages = example["messages"]
    problems = _check_messages(messages, "messages")
    problems += _check_tools(example, "")
    if problems:
        return problems
    if messages[0]["role"] == "assistant":
        problems.append("messages[0] is an assistant message: a conversation starts with what prompts it")
    if not any(m["role"] == "assistant" and m.get("weight", 1) == 1 for m in messages):
        problems.append("messages has no assistant message to learn from (one with weight 1)")
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
        problems += _check_tools(source, "input.")
    for key in ("preferred_output", "non_preferred_output"):
        output = example.get(key)
        if key not in example:
            problems.append(f"{key} is missing")
        elif not isinstance(output, list) or len(output) != 1:
            problems.append(f"{key} must be a list of one assistant message")
        else:
            problems += _check_message(output[0], f"{key}[0]", ("assistant",), None)
    return problems


def _check_classification(example: dict[str, Any]) -> list[str]:
    problems = []
    text = example.get("text")
    if "text" not in example:
        problems.append("text is missing")
    elif not isinstance(text, str):
        problems.append("text must be a string")
    elif not text.strip():
        problems.append("text is empty")
    label = example.get("label")
    if "label" not in example:
        problems.append("label is missing")
    elif isinstance(label, str):
        if not label.strip():
            problems.append("label is empty")
        elif len(label) > MAX_LABEL_CHARS:
            problems.append(f"label is {len(label)} characters long; a label has at most {MAX_LABEL_CHARS}")
    elif not isinstance(label, int):  # bool is an int
        problems.append("label must be a string, an integer or true/false")
    return problems


_CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    CHAT: _check_chat,
    PROMPT_COMPLETION: _check_prompt_completion,
    PREFERENCE: _check_preference,
    CLASSIFICATION: _check_classification,
}


def _label_problems(report: DatasetReport, label: str) -> list[str]:
    if label not in report.labels and len(report.labels) >= MAX_LABELS:
        return [f"label {label!r} is one more than the {MAX_LABELS} distinct labels a classifier can have"]
    return []


# ---- messages ----------------------------------------------------------------------------------


def _check_messages(messages: Any, where: str) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return [f"{where} must be a non-empty list of messages"]
    problems: list[str] = []
    call_ids: set[str] = set()  # the ids of the tool calls made so far, which tool messages answer
    for index, message in enumerate(messages):
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            # Only the first are reported: a line of a million empty messages would otherwise build
            # millions of messages, hundreds of megabytes, to throw away.
            problems.append(f"{where}[{index}:] not checked: the messages before have too many problems")
            break
        problems += _check_message(message, f"{where}[{index}]", ROLES, call_ids)
    return problems


def _check_message(message: Any, where: str, roles: tuple[str, ...], call_ids: set[str] | None) -> list[str]:
    if not isinstance(message, dict):
        return [f"{where} must be an object with 'role' and 'content'"]
    problems = [f"{where} has unrecognized key {key!r}" for key in message if key not in MESSAGE_KEYS]
    role = message.get("role")
    if role is None:
        problems.append(f"{where}.role is missing")
    elif not isinstance(role, str) or role not in roles:
        problems.append(f"{where}.role must be one of {', '.join(roles)}")
    has_tool_calls = bool(message.get("tool_calls") or message.get("function_call"))
    problems += _check_content(message.get("content"), where, role, has_tool_calls)
    if "name" in message and not isinstance(message["name"], str):
        problems.append(f"{where}.name must be a string")
    if message.get("refusal") is not None and not isinstance(message["refusal"], str):
        problems.append(f"{where}.refusal must be a string")
    if "weight" in message:
        if role != "assistant":
            problems.append(f"{where}.weight is only allowed on assistant messages")
        elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            problems.append(f"{where}.weight must be 0 or 1")
    if "tool_calls" in message:
        if role != "assistant":
            problems.append(f"{where}.tool_calls is only allowed on assistant messages")
        problems += _check_tool_calls(message["tool_calls"], f"{where}.tool_calls", call_ids)
    if role == "tool" and call_ids is not None:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            problems.append(f"{where}.tool_call_id must be the id of the tool call it answers")
        elif call_id not in call_ids:
            problems.append(f"{where}.tool_call_id {call_id!r} answers no earlier tool call")
    return problems


def _check_content(content: Any, where: str, role: Any, has_tool_calls: bool) -> list[str]:
    if content is None:
        if role == "assistant" and has_tool_calls:
            return []
        return [f"{where}.content is missing"]
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        return [f"{where}.content must be a string, or a list of text parts"]
    if not content:
        return [f"{where}.content is an empty list"]
    return [
        f'{where}.content[{index}] must be a text part ({{"type": "text", "text": ...}}): '
        "only text is trained on"
        for index, part in enumerate(content)
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str))
    ]


def _check_tool_calls(tool_calls: Any, where: str, call_ids: set[str] | None) -> list[str]:
    if not isinstance(tool_calls, list):
        return [f"{where} must be a list"]
    problems = []
    for index, call in enumerate(tool_calls):
        at = f"{where}[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            problems.append(f"{at} must be an object with a 'function' object")
            continue
        if call.get("type", "function") != "function":
            problems.append(f"{at}.type must be 'function'")
        if "id" in call:
            if not isinstance(call["id"], str):
                problems.append(f"{at}.id must be a string")
            elif call_ids is not None:
                call_ids.add(call["id"])
        if not isinstance(function.get("name"), str) or not function["name"]:
            problems.append(f"{at}.function.name must be a non-empty string")
        problems += _check_arguments(function.get("arguments"), f"{at}.function.arguments")
    return problems


def _check_arguments(arguments: Any, where: str) -> list[str]:
    if not isinstance(arguments, str):
        return [f"{where} must be a string of JSON"]
    try:
        json.loads(arguments, parse_constant=_reject_constant)
    except RecursionError:
        return [f"{where} is nested too deeply"]
    except ValueError:  # JSONDecodeError, NaN, an integer too long to convert
        return [f"{where} is not valid JSON"]
    return []


def _check_tools(example: dict[str, Any], where: str) -> list[str]:
    problems = []
    tools = example.get("tools")
    if "tools" in example:
        if not isinstance(tools, list):
            problems.append(f"{where}tools must be a list")
        else:
            for index, tool in enumerate(tools):
                function = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    problems.append(
                        f"{where}tools[{index}] must be an object with a 'function' object that has a 'name'"
                    )
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        problems.append(f"{where}parallel_tool_calls must be true or false")
    return problems


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _clip(problem: str) -> str:
    return problem if len(problem) <= MAX_PROBLEM_CHARS else problem[:MAX_PROBLEM_CHARS] + "…"


def _more(total: int, shown: int, noun: str) -> str:
    return f"; and {total - shown} more {noun}(s)" if total > shown else ""
