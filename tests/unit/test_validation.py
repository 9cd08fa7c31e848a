"""The dataset validator over well-formed and broken examples, as tables, over a corpus of messy files
(tests/data/datasets), and as a property: any well-formed file passes, and one breakage anywhere is
reported with its line and field."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.files.validation import (
    CHAT,
    CLASSIFICATION,
    MAX_LABELS,
    MAX_REPORTED_PROBLEMS,
    PREFERENCE,
    PROMPT_COMPLETION,
    DatasetReport,
    ExampleRejected,
    check_dataset,
    check_lines,
    example_format,
)
from catalog.formats import reading_formats

DATASETS = Path(__file__).parents[1] / "data" / "datasets"


def lines(*examples: object) -> list[bytes]:
    return [json.dumps(e).encode() + b"\n" for e in examples]


def chat(*messages: dict, **extra: object) -> dict:
    return {"messages": list(messages), **extra}


def check_file(name: str, **kwargs: Any) -> DatasetReport:
    with (DATASETS / name).open("rb") as file:
        return check_lines(file, **kwargs)


USER = {"role": "user", "content": "What colour is a lime?"}
ASSISTANT = {"role": "assistant", "content": "green"}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
PREFERENCE_EXAMPLE = {
    "input": {"messages": [USER]},
    "preferred_output": [ASSISTANT],
    "non_preferred_output": [{"role": "assistant", "content": "blue"}],
}

GOOD = [
    pytest.param(chat(USER, ASSISTANT), CHAT, id="chat"),
    pytest.param(chat({"role": "system", "content": "Be brief."}, USER, ASSISTANT), CHAT, id="system"),
    pytest.param(
        chat(USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 1}), CHAT, id="weights"
    ),
    pytest.param(
        chat(
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ASSISTANT,
            tools=[{"type": "function", "function": {"name": "f"}}],
            parallel_tool_calls=False,
        ),
        CHAT,
        id="tools",
    ),
    pytest.param(
        chat(
            USER,
            {"role": "assistant", "content": None, "tool_calls": [CALL, {**CALL, "id": "c2"}]},
            {"role": "tool", "tool_call_id": "c2", "content": "b"},
            {"role": "tool", "tool_call_id": "c1", "content": "a"},
            ASSISTANT,
        ),
        CHAT,
        id="parallel-tool-calls",
    ),
    pytest.param(
        chat({"role": "user", "content": [{"type": "text", "text": "Hi"}]}, ASSISTANT), CHAT, id="text-parts"
    ),
    pytest.param(
        chat({"role": "user", "content": "Grüße 👋 日本 مرحبا"}, {"role": "assistant", "content": "¡Hola!"}),
        CHAT,
        id="unicode",
    ),
    pytest.param(chat({"role": "user", "content": ""}, ASSISTANT), CHAT, id="empty-user-turn"),
    pytest.param(chat(USER, ASSISTANT, id=7, source="crm"), CHAT, id="extra-top-level-keys"),
    # A support bot that greets first, or a chat log whose first user turn was lost: OpenAI's format has
    # no rule about the first message.
    pytest.param(chat(ASSISTANT, USER, ASSISTANT), CHAT, id="assistant-first"),
    pytest.param(chat(ASSISTANT), CHAT, id="assistant-only"),
    pytest.param({"prompt": "2+2=", "completion": "4"}, PROMPT_COMPLETION, id="prompt-completion"),
    pytest.param({"prompt": "", "completion": "4"}, PROMPT_COMPLETION, id="empty-prompt"),
    pytest.param(PREFERENCE_EXAMPLE, PREFERENCE, id="preference"),
    pytest.param(
        {**PREFERENCE_EXAMPLE, "input": {"messages": [USER], "tools": [{"function": {"name": "f"}}]}},
        PREFERENCE,
        id="preference-tools",
    ),
    pytest.param({"text": "WIN A PRIZE", "label": "spam"}, CLASSIFICATION, id="classification"),
    pytest.param({"text": "fine", "label": 3}, CLASSIFICATION, id="classification-int"),
    pytest.param({"text": "fine", "label": False}, CLASSIFICATION, id="classification-bool"),
]


@pytest.mark.parametrize(("example", "fmt"), GOOD)
def test_well_formed_examples_pass(example: dict, fmt: str) -> None:
    report = check_lines(lines(example))
    assert report.ok, report.problems
    assert report.n_examples == 1
    assert report.formats == {fmt: 1}
    assert example_format(example) == fmt


def encoded(example: object) -> bytes:
    return json.dumps(example).encode()


BAD = [
    pytest.param(b"[1, 2]", "line 1: must be a JSON object, not an array", id="array"),
    pytest.param(
        encoded([chat(USER, ASSISTANT)]),
        "line 1: must be a JSON object, not an array (write one example per line",
        id="array-of-examples",
    ),
    pytest.param(b'"text"', "line 1: must be a JSON object, not a string", id="string"),
    pytest.param(b"3.5", "line 1: must be a JSON object, not a number", id="number"),
    pytest.param(b"null", "line 1: must be a JSON object, not null", id="null"),
    pytest.param(b"{oops", "line 1: is not valid JSON", id="not-json"),
    pytest.param(b"{'prompt': 'x'}", "line 1: is not valid JSON (Expecting property name", id="python-repr"),
    pytest.param(
        b"[",
        "line 1: is not valid JSON (Expecting value at column 2); the file looks like one JSON array",
        id="json-array-file",
    ),
    pytest.param(b"{\n", "line 1: is not valid JSON", id="pretty-printed-file"),
    pytest.param(b'{"prompt": "caf\xe9"}', "line 1: is not valid UTF-8 (byte 15)", id="latin-1"),
    pytest.param(b"\xff\xfe{\x00}\x00", "line 1: the file is UTF-16 text; save it as UTF-8", id="utf-16"),
    pytest.param(b'{"prompt": "x", "completion": NaN}', "line 1: is not valid JSON (NaN is not", id="nan"),
    pytest.param(b'{"a": Infinity}', "line 1: is not valid JSON (Infinity is not", id="infinity"),
    pytest.param(b'{"a": -Infinity}', "line 1: is not valid JSON (-Infinity is not", id="minus-infinity"),
    pytest.param(
        b'{"a": ' + b"9" * 5000 + b"}", "line 1: is not valid JSON (Exceeds the limit", id="huge-int"
    ),
    pytest.param(
        b'{"prompt": "a", "prompt": "b", "completion": "c"}',
        "line 1: has the key 'prompt' more than once in one object",
        id="duplicated-key",
    ),
    pytest.param(
        b'{"messages": [{"role": "user", "content": "a\\udc00"}, {"role": "assistant", "content": "b"}]}',
        "line 1: messages[0].content has an unpaired surrogate escape",
        id="lone-surrogate",
    ),
    pytest.param(b'{"question": "hi"}', "line 1: must have 'messages'", id="unknown-format"),
    pytest.param(
        encoded({**chat(USER, ASSISTANT), "prompt": "x"}),
        "line 1: mixes chat key(s) 'messages' and prompt/completion key(s) 'prompt'",
        id="two-formats-in-one-example",
    ),
    pytest.param(encoded({"messages": []}), "line 1: messages must be a non-empty list", id="no-messages"),
    pytest.param(encoded({"messages": "hi"}), "line 1: messages must be a non-empty list", id="messages-str"),
    pytest.param(
        encoded(chat("hi", ASSISTANT)), "line 1: messages[0] must be an object", id="message-not-object"
    ),
    pytest.param(
        encoded(chat({"role": "robot", "content": "x"}, ASSISTANT)),
        "line 1: messages[0].role must be one of system, user, assistant, tool",
        id="bad-role",
    ),
    pytest.param(
        encoded(chat({"role": "User", "content": "x"}, ASSISTANT)),
        "line 1: messages[0].role must be one of system, user, assistant, tool",
        id="role-case",
    ),
    pytest.param(
        encoded(chat({"role": ["user"], "content": "x"}, ASSISTANT)),
        "line 1: messages[0].role must be one of",
        id="role-list",
    ),
    pytest.param(
        encoded(chat({"content": "x"}, ASSISTANT)), "line 1: messages[0].role is missing", id="no-role"
    ),
    pytest.param(
        encoded(chat({"role": "user"}, ASSISTANT)), "line 1: messages[0].content is missing", id="no-content"
    ),
    pytest.param(
        encoded(chat({"role": "user", "content": None}, ASSISTANT)),
        "line 1: messages[0].content is missing",
        id="null-content",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "content": None})),
        "line 1: messages[1].content is missing",
        id="null-answer-without-tool-calls",
    ),
    pytest.param(
        encoded(chat({"role": "user", "content": 5}, ASSISTANT)),
        "line 1: messages[0].content must be a string",
        id="content-number",
    ),
    pytest.param(
        encoded(chat({"role": "user", "content": []}, ASSISTANT)),
        "line 1: messages[0].content is an empty list",
        id="content-empty-list",
    ),
    pytest.param(
        encoded(
            chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}, ASSISTANT)
        ),
        "line 1: messages[0].content[0] must be a text part",
        id="image-part",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "mood": "happy"})),
        "line 1: messages[1] has unrecognized key 'mood'",
        id="unknown-key",
    ),
    pytest.param(
        encoded(chat({**USER, "name": 3}, ASSISTANT)), "line 1: messages[0].name must be a string", id="name"
    ),
    pytest.param(
        encoded(chat({**USER, "weight": 1}, ASSISTANT)),
        "line 1: messages[0].weight is only allowed on assistant messages",
        id="weight-on-user",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "weight": 2})),
        "line 1: messages[1].weight must be 0 or 1",
        id="weight-2",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "weight": True})),
        "line 1: messages[1].weight must be 0 or 1",
        id="weight-true",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "weight": 0})),
        "line 1: messages has no assistant message to learn from",
        id="all-weight-0",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "tool_calls": {"id": "c1"}})),
        "line 1: messages[1].tool_calls must be a list",
        id="tool-calls-object",
    ),
    pytest.param(
        encoded(chat({**USER, "tool_calls": [CALL]}, ASSISTANT)),
        "line 1: messages[0].tool_calls is only allowed on assistant messages",
        id="tool-calls-on-user",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "tool_calls": [{"id": "c1"}]}, ASSISTANT)),
        "line 1: messages[1].tool_calls[0] must be an object with a 'function' object",
        id="tool-call-without-function",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "tool_calls": [{**CALL, "type": "code"}]}, ASSISTANT)),
        "line 1: messages[1].tool_calls[0].type must be 'function'",
        id="tool-call-type",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "tool_calls": [{**CALL, "function": {"arguments": "{}"}}]})),
        "line 1: messages[1].tool_calls[0].function.name must be a non-empty string",
        id="tool-call-without-name",
    ),
    pytest.param(
        encoded(
            chat(
                USER,
                {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]},
            )
        ),
        "line 1: messages[1].tool_calls[0].function.arguments must be a string of JSON",
        id="tool-call-arguments-object",
    ),
    pytest.param(
        encoded(
            chat(
                USER,
                {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{x"}}]},
            )
        ),
        "line 1: messages[1].tool_calls[0].function.arguments is not valid JSON",
        id="tool-call-arguments-not-json",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "tool", "content": "42"}, ASSISTANT)),
        "line 1: messages[1].tool_call_id must be the id of the tool call it answers",
        id="tool-without-call-id",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "tool", "tool_call_id": "c1", "content": "42"}, ASSISTANT)),
        "line 1: messages[1].tool_call_id 'c1' answers no earlier tool call",
        id="tool-answers-nothing",
    ),
    pytest.param(
        encoded(chat(USER, ASSISTANT, tools={"name": "f"})), "line 1: tools must be a list", id="tools"
    ),
    pytest.param(
        encoded(chat(USER, ASSISTANT, tools=[{"type": "function"}])),
        "line 1: tools[0] must be an object with a 'function' object that has a 'name'",
        id="tool-without-function",
    ),
    pytest.param(
        encoded(chat(USER, ASSISTANT, parallel_tool_calls="no")),
        "line 1: parallel_tool_calls must be true or false",
        id="parallel-tool-calls",
    ),
    pytest.param(encoded({"prompt": "x"}), "line 1: completion is missing", id="no-completion"),
    pytest.param(encoded({"completion": "x"}), "line 1: prompt is missing", id="no-prompt"),
    pytest.param(
        encoded({"prompt": 1, "completion": "x"}), "line 1: prompt must be a string", id="prompt-int"
    ),
    pytest.param(
        encoded({"prompt": "x", "completion": " "}), "line 1: completion is empty", id="empty-completion"
    ),
    pytest.param(
        encoded({"input": {"messages": [USER]}, "preferred_output": [ASSISTANT]}),
        "line 1: non_preferred_output is missing",
        id="half-preference",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": [USER]}),
        "line 1: input must be an object with 'messages'",
        id="preference-input-list",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": {"messages": [{"role": "robot", "content": "x"}]}}),
        "line 1: input.messages[0].role must be one of",
        id="preference-input-role",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": {"messages": [USER], "tools": "f"}}),
        "line 1: input.tools must be a list",
        id="preference-input-tools",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": {"messages": [USER, ASSISTANT]}}),
        "line 1: input.messages must end before the answer, not with an assistant message",
        id="preference-input-ends-with-an-answer",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "preferred_output": [USER]}),
        "line 1: preferred_output[0].role must be one of assistant",
        id="preference-user-output",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "preferred_output": [ASSISTANT, ASSISTANT]}),
        "line 1: preferred_output must be a list of one assistant message",
        id="preference-two-outputs",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "non_preferred_output": ASSISTANT}),
        "line 1: non_preferred_output must be a list of one assistant message",
        id="preference-output-object",
    ),
    pytest.param(encoded({"text": "hi"}), "line 1: label is missing", id="no-label"),
    pytest.param(encoded({"label": "spam"}), "line 1: text is missing", id="no-text"),
    pytest.param(encoded({"text": " ", "label": "a"}), "line 1: text is empty", id="empty-text"),
    pytest.param(encoded({"text": ["a"], "label": "a"}), "line 1: text must be a string", id="text-list"),
    pytest.param(encoded({"text": "a", "label": ""}), "line 1: label is empty", id="empty-label"),
    pytest.param(
        encoded({"text": "a", "label": 0.5}),
        "line 1: label must be a string, an integer or true/false",
        id="float",
    ),
    pytest.param(
        encoded({"text": "a", "label": None}),
        "line 1: label must be a string, an integer or true/false",
        id="null",
    ),
    pytest.param(
        encoded({"text": "a", "label": "x" * 300}), "line 1: label is 300 characters long", id="long"
    ),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "line 1: is nested too deeply", id="json-bomb"),
    pytest.param(
        b'{"messages": [], "tools": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "line 1: is nested too deeply",
        id="json-bomb-inside-example",
    ),
    pytest.param(
        b"\xef\xbb\xbf\xef\xbb\xbf{}",
        "line 1: starts with a byte-order mark (U+FEFF); only the file's first line may",
        id="two-boms",
    ),
]


def test_a_line_without_an_answer_is_a_reinforcement_prompt_and_no_supervised_example() -> None:
    lines = [encoded(chat(USER))] * 10
    uploaded = check_lines(lines)
    assert uploaded.ok and uploaded.formats == {"reinforcement": 10}
    issue = check_dataset(uploaded, "supervised")
    assert issue is not None and "10 reinforcement example(s)" in issue.message
    as_supervised = check_lines(lines, formats=reading_formats("supervised"))
    assert check_dataset(as_supervised, "supervised") is not None
    as_reinforcement = check_lines(lines, formats=reading_formats("reinforcement"))
    assert check_dataset(as_reinforcement, "reinforcement") is None


def test_reinforcement_lines_must_have_the_fields_the_grader_reads() -> None:
    lines = [encoded({**chat(USER), "answer": "red"})] * 9 + [encoded(chat(USER))]
    report = check_lines(lines, formats=reading_formats("reinforcement"), item_fields=frozenset({"answer"}))
    assert report.problems == ["line 10: has no field 'answer', which the grader reads as {{item.answer}}"]


def test_a_nested_field_the_grader_reads_is_checked_down_its_path() -> None:
    good = {**chat(USER), "fruit": {"colours": ["red"]}}
    lines = [encoded(good)] * 8 + [
        encoded({**chat(USER), "fruit": {}}),
        encoded({**chat(USER), "fruit": "x"}),
    ]
    fields = frozenset({"fruit.colours.0"})
    report = check_lines(lines, formats=reading_formats("reinforcement"), item_fields=fields)
    problem = "has no field 'fruit.colours.0', which the grader reads as {{item.fruit.colours.0}}"
    assert report.problems == [f"line 9: {problem}", f"line 10: {problem}"]


def test_a_reinforcement_prompt_may_not_end_with_the_answer() -> None:
    report = check_lines([encoded(chat(USER, ASSISTANT))], formats=reading_formats("reinforcement"))
    assert "is an assistant message: a reinforcement prompt ends" in report.problems[0]


@pytest.mark.parametrize(("line", "problem"), BAD)
def test_broken_examples_name_line_and_field(line: bytes, problem: str) -> None:
    report = check_lines([line])
    assert not report.ok
    assert report.n_examples == 0
    assert any(p.startswith(problem) for p in report.problems), report.problems


def test_line_numbers_count_every_physical_line() -> None:
    good = lines(chat(USER, ASSISTANT))[0]
    report = check_lines([good, b"\n", good, b"{bad\n", good])
    assert report.n_examples == 3
    assert report.problems[0].startswith("line 4:")


def test_bom_crlf_and_missing_trailing_newline_are_accepted() -> None:
    body = b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(chat(USER, ASSISTANT)).encode() for _ in range(3))
    report = check_lines(body.splitlines(keepends=True))
    assert report.ok and report.n_examples == 3


def test_a_byte_order_mark_after_line_1_is_a_problem_of_its_line() -> None:
    good = lines(chat(USER, ASSISTANT))[0]
    report = check_lines([b"\xef\xbb\xbf" + good, b"\xef\xbb\xbf" + good])  # two files concatenated
    assert report.n_examples == 1
    assert report.problems == [
        "line 2: starts with a byte-order mark (U+FEFF); only the file's first line may"
    ]


def test_a_very_long_line_is_one_example() -> None:
    report = check_lines(lines(chat(USER, {"role": "assistant", "content": "x" * 2_000_000})))
    assert report.ok and report.n_examples == 1


def test_a_very_long_broken_line_is_reported_with_its_column() -> None:
    line = encoded(chat(USER, {"role": "assistant", "content": "y" * 3_000_000}))[:-1]  # the last } is lost
    report = check_lines([line])
    assert report.problems == [
        f"line 1: is not valid JSON (Expecting ',' delimiter at column {len(line) + 1})"
    ]


def test_only_the_first_problems_are_kept_but_all_bad_lines_are_counted() -> None:
    report = check_lines([b"{bad"] * 50)
    assert report.n_bad_lines == 50
    assert report.n_problems == 50
    assert len(report.problems) == MAX_REPORTED_PROBLEMS
    assert report.summary().startswith("50 invalid line(s): line 1: is not valid JSON")
    assert report.summary().endswith("; and 40 more problem(s)")


def test_one_line_reports_all_its_problems() -> None:
    report = check_lines(lines(chat({"role": "robot"}, {**ASSISTANT, "weight": 5, "mood": 1})))
    assert report.n_bad_lines == 1
    assert report.problems == [
        "line 1: messages[0].role must be one of system, user, assistant, tool",
        "line 1: messages[0].content is missing",
        "line 1: messages[1] has unrecognized key 'mood'",
        "line 1: messages[1].weight must be 0 or 1",
    ]


def test_a_file_holds_one_format_and_the_first_line_decides_it() -> None:
    report = check_lines(
        lines(
            {"prompt": "a", "completion": "b"},
            chat(USER, ASSISTANT),
            {"prompt": "c", "completion": "d"},
            PREFERENCE_EXAMPLE,
        )
    )
    assert report.n_examples == 2
    assert report.formats == {PROMPT_COMPLETION: 2}
    assert report.problems == [
        "line 2: is a chat example, but line 1 is a prompt/completion example: "
        "a file holds examples of one format",
        "line 4: is a preference example, but line 1 is a prompt/completion example: "
        "a file holds examples of one format",
    ]


def test_classification_collects_the_labels_as_strings() -> None:
    labels: list[object] = ["spam", "ham", 1, True, "spam", 1, "1"]
    report = check_lines(lines(*({"text": f"t{i}", "label": label} for i, label in enumerate(labels))))
    assert report.ok
    assert report.label_names == ["1", "True", "ham", "spam"]
    assert report.labels == {"spam": 2, "ham": 1, "1": 3, "True": 1}


def test_a_classifier_has_at_most_max_labels() -> None:
    examples = ({"text": "t", "label": f"label {i}"} for i in range(MAX_LABELS + 2))
    report = check_lines(json.dumps(example).encode() for example in examples)
    assert len(report.labels) == MAX_LABELS
    assert report.n_bad_lines == 2
    assert report.problems[0] == (
        f"line {MAX_LABELS + 1}: label 'label {MAX_LABELS}' is one more than the {MAX_LABELS} "
        "distinct labels a classifier can have"
    )


def test_validation_streams_a_large_file_in_little_memory() -> None:
    def generated(n: int) -> Iterator[bytes]:
        for index in range(n):
            yield encoded(chat(USER, {"role": "assistant", "content": f"answer {index} " * 20})) + b"\n"

    tracemalloc.start()
    try:
        report = check_lines(generated(10_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.n_examples == 10_000
    assert peak < 1_000_000  # the 10,000 lines are ~3 MB: none is kept


# ---- context length (the token counter is a hook; the real one is in worker/context_length.py) ------


def count_characters(example: dict[str, Any]) -> int:
    return sum(len(m["content"]) for m in example["messages"])


def test_examples_longer_than_the_context_are_warnings_not_errors() -> None:
    short, long = chat(USER, ASSISTANT), chat(USER, {"role": "assistant", "content": "x" * 100})
    report = check_lines(lines(short, long, short, long), count_tokens=count_characters, max_tokens=50)
    assert report.ok and report.n_examples == 4
    assert report.n_long_examples == 2
    assert report.warnings == [
        "line 2: example is 122 tokens, longer than the model's context of 50 tokens (training truncates it)",
        "line 4: example is 122 tokens, longer than the model's context of 50 tokens (training truncates it)",
    ]
    assert report.n_tokens == 2 * 27 + 2 * 122
    assert report.max_example_tokens == 122
    summary = report.warning_summary()
    assert summary is not None and summary.startswith("2 warning(s): line 2: example is 122 tokens")


def test_the_limit_can_be_named() -> None:
    report = check_lines(
        lines(chat(USER, ASSISTANT)), count_tokens=count_characters, max_tokens=5, limit_name="max_seq_length"
    )
    assert report.warnings[0].startswith(
        "line 1: example is 27 tokens, longer than max_seq_length of 5 tokens"
    )


def test_without_a_limit_tokens_are_only_counted() -> None:
    report = check_lines(lines(chat(USER, ASSISTANT)), count_tokens=count_characters)
    assert report.n_tokens == 27 and not report.warnings and report.warning_summary() is None


def test_only_valid_examples_are_counted() -> None:
    counted: list[dict] = []

    def count(example: dict[str, Any]) -> int:
        counted.append(example)
        return 1

    check_lines([b"{bad", *lines({"messages": []}), *lines(chat(USER, ASSISTANT))], count_tokens=count)
    assert counted == [chat(USER, ASSISTANT)]


def test_an_example_the_model_cannot_render_is_a_problem_of_its_line() -> None:
    def count(example: dict[str, Any]) -> int:
        if len(example["messages"]) > 2:
            raise ExampleRejected("the model's chat template rejected this example: roles must alternate")
        return 1

    report = check_lines(lines(chat(USER, ASSISTANT), chat(USER, USER, ASSISTANT)), count_tokens=count)
    assert report.n_examples == 1
    assert report.problems == [
        "line 2: the model's chat template rejected this example: roles must alternate"
    ]


def test_a_rejected_example_adds_neither_its_label_nor_its_tokens() -> None:
    def count(example: dict[str, Any]) -> int:
        if example["label"] == "odd":
            raise ExampleRejected("the model can't read this text")
        return 3

    report = check_lines(
        lines({"text": "a", "label": "even"}, {"text": "b", "label": "odd"}), count_tokens=count
    )
    assert report.labels == {"even": 1}
    assert report.n_tokens == 3 and report.n_examples == 1


# ---- dataset rules -----------------------------------------------------------------------------


class TestDatasetRules:
    def report(self, n: int, fmt: str = CHAT, labels: tuple[str, ...] = ()) -> DatasetReport:
        report = DatasetReport(n_examples=n)
        report.formats[fmt] = n
        for label in labels:
            report.labels[label] += 1
        return report

    def test_ten_examples_are_enough(self) -> None:
        assert check_dataset(self.report(10), "supervised") is None

    def test_nine_are_not(self) -> None:
        issue = check_dataset(self.report(9), "supervised")
        assert issue is not None
        assert issue.code == "invalid_n_examples"
        assert issue.message == "Training file has 9 example(s), but must have at least 10 examples"

    def test_the_method_decides_the_format(self) -> None:
        issue = check_dataset(self.report(12, PREFERENCE), "supervised")
        assert issue is not None and issue.code == "invalid_training_file"
        assert issue.message == (
            "The supervised method trains on chat or prompt/completion examples, but the training file has "
            "12 preference example(s)"
        )
        assert check_dataset(self.report(12, PREFERENCE), "dpo") is None
        assert check_dataset(self.report(12, PROMPT_COMPLETION), "supervised") is None

    def test_classification_needs_two_labels(self) -> None:
        issue = check_dataset(self.report(12, CLASSIFICATION, ("spam",)), "classification")
        assert issue is not None and issue.code == "invalid_training_file"
        assert issue.message == (
            "The classification method needs at least 2 distinct labels, "
            "but the file has only the label 'spam'"
        )
        assert check_dataset(self.report(12, CLASSIFICATION, ("spam", "ham")), "classification") is None

    def test_classification_trains_only_on_classification_examples(self) -> None:
        issue = check_dataset(self.report(12, CHAT), "classification")
        assert issue is not None and "12 chat example(s)" in issue.message
        issue = check_dataset(self.report(12, CLASSIFICATION, ("a", "b")), "supervised")
        assert issue is not None and "12 classification example(s)" in issue.message

    def test_a_broken_file_fails_with_the_summary(self) -> None:
        report = check_lines([b"{bad"] * 12)
        issue = check_dataset(report, "supervised")
        assert issue is not None and issue.code == "invalid_training_file"
        assert issue.message == report.summary()

    def test_a_validation_file_needs_one_example_of_the_method_s_format(self) -> None:
        assert check_dataset(self.report(1), "supervised", purpose="validation") is None
        issue = check_dataset(self.report(0), "supervised", purpose="validation")
        assert issue is not None and issue.code == "invalid_validation_file"
        issue = check_dataset(self.report(3, PREFERENCE), "supervised", purpose="validation")
        assert issue is not None and issue.code == "invalid_validation_file"
        assert "the validation file has 3 preference example(s)" in issue.message
        issue = check_dataset(check_lines([b"{bad"]), "supervised", purpose="validation")
        assert issue is not None and issue.code == "invalid_validation_file"

    def test_validation_labels_must_be_known_to_training(self) -> None:
        training = self.report(12, CLASSIFICATION, ("ham", "spam"))
        validation = self.report(3, CLASSIFICATION, ("ham", "eggs", "bacon"))
        issue = check_dataset(validation, "classification", purpose="validation", training=training)
        assert issue is not None and issue.code == "invalid_validation_file"
        assert (
            issue.message
            == "The validation file has 2 label(s) that no training example has: 'bacon', 'eggs'"
        )
        validation = self.report(1, CLASSIFICATION, ("ham",))  # one label is enough to validate on
        assert check_dataset(validation, "classification", purpose="validation", training=training) is None


# ---- the corpus of messy files -----------------------------------------------------------------

CORPUS = [
    # name, examples, format, the problems reported (all of them, in order)
    ("chat_tools_weights.jsonl", 12, CHAT, []),
    ("unicode.jsonl", 11, CHAT, []),
    ("windows_bom_crlf_no_final_newline.jsonl", 10, PROMPT_COMPLETION, []),
    ("preference.jsonl", 10, PREFERENCE, []),
    ("classification.jsonl", 12, CLASSIFICATION, []),
    ("seven_examples.jsonl", 7, PROMPT_COMPLETION, []),
    ("blank_lines.jsonl", 6, PROMPT_COMPLETION, ["line 9: completion must be a string"]),
    (
        "mixed_formats.jsonl",
        4,
        CHAT,
        [
            "line 4: is a prompt/completion example, but line 1 is a chat example: a file holds examples of "
            "one format",
            "line 6: is a classification example, but line 1 is a chat example: a file holds examples of one "
            "format",
        ],
    ),
    (
        "empty_turns.jsonl",
        2,
        CHAT,
        [
            "line 3: messages[0].content is missing",
            "line 4: messages[1].content is missing",
            "line 5: messages[0].content is an empty list",
            "line 6: messages[1].content is missing",
            "line 7: messages has no assistant message to learn from (one with weight 1)",
        ],
    ),
    (
        "tool_mistakes.jsonl",
        0,
        None,
        [
            "line 1: messages[1].tool_calls[0].function.arguments is not valid JSON",
            "line 2: messages[1].tool_call_id 'c9' answers no earlier tool call",
            "line 3: tools must be a list",
            "line 4: parallel_tool_calls must be true or false",
            'line 5: messages[0].content[0] must be a text part ({"type": "text", "text": ...}): '
            "only text is trained on",
        ],
    ),
    ("latin1.jsonl", 1, PROMPT_COMPLETION, ["line 2: is not valid UTF-8 (byte 13)"]),
    (
        "lone_surrogate.jsonl",
        0,
        None,
        ["line 1: messages[0].content has an unpaired surrogate escape (\\ud800-\\udfff): not valid Unicode"],
    ),
]


@pytest.mark.parametrize(("name", "n_examples", "fmt", "problems"), CORPUS, ids=[row[0] for row in CORPUS])
def test_corpus_file(name: str, n_examples: int, fmt: str | None, problems: list[str]) -> None:
    report = check_file(name)
    assert report.problems == problems
    assert report.n_examples == n_examples
    assert report.formats == ({fmt: n_examples} if n_examples else {})


def test_corpus_classification_labels() -> None:
    report = check_file("classification.jsonl")
    assert report.label_names == ["0", "1", "False", "True", "ham", "spam"]
    assert report.labels["ham"] == 4
    assert check_dataset(report, "classification") is None
    issue = check_dataset(check_file("classification_one_label.jsonl"), "classification")
    assert issue is not None and "only the label 'positive'" in issue.message


def test_corpus_seven_examples_are_too_few() -> None:
    issue = check_dataset(check_file("seven_examples.jsonl"), "supervised")
    assert issue is not None and issue.code == "invalid_n_examples"


def test_corpus_broken_lines() -> None:
    report = check_file("broken_lines.jsonl")
    assert report.n_examples == 1
    assert report.n_bad_lines == 12
    assert report.problems == [
        "line 2: must be a JSON object, not an array",
        "line 3: must be a JSON object, not a string",
        "line 4: must be a JSON object, not a number",
        "line 5: must be a JSON object, not null",
        "line 6: is not valid JSON (NaN is not a JSON value; write a number, a string or null)",
        "line 7: is not valid JSON (-Infinity is not a JSON value; write a number, a string or null)",
        "line 8: has the key 'content' more than once in one object",
        "line 9: is not valid JSON (Expecting property name enclosed in double quotes at column 88)",
        "line 10: messages[0].role must be one of system, user, assistant, tool",
        "line 11: messages must be a non-empty list of messages",
    ]
    assert report.summary().endswith("; and 2 more problem(s)")


@pytest.mark.parametrize(
    ("name", "first_problem"),
    [
        ("utf16.jsonl", "line 1: the file is UTF-16 text; save it as UTF-8"),
        (
            "json_array.json",
            "line 1: is not valid JSON (Expecting value at column 1); the file looks like one JSON array",
        ),
        (
            "pretty_printed.jsonl",
            "line 1: is not valid JSON (Expecting property name enclosed in double quotes at "
            "column 1); the file looks like pretty-printed JSON",
        ),
    ],
)
def test_corpus_files_that_are_not_json_lines_say_so_on_line_1(name: str, first_problem: str) -> None:
    report = check_file(name)
    assert report.n_examples == 0
    assert report.problems[0].startswith(first_problem)


# ---- properties --------------------------------------------------------------------------------

# Any text, including emoji, CJK, right-to-left scripts, control characters and the empty string; but
# no lone surrogates, which are not Unicode and are refused on purpose.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@st.composite
def chat_examples(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for turn in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(TEXT)})
        if draw(st.booleans()):
            call_id = f"call_{turn}"
            arguments = json.dumps({"q": draw(TEXT)})
            call = {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": arguments}}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": draw(TEXT)})
        answer: dict[str, Any] = {"role": "assistant", "content": draw(TEXT)}
        weight = draw(st.sampled_from([None, 0, 1]))
        if weight is not None:
            answer["weight"] = weight
        messages.append(answer)
    if not any(m.get("weight", 1) == 1 for m in messages if m["role"] == "assistant"):
        messages[-1]["weight"] = 1
    return {"messages": messages}


def file_lines(examples: list[dict[str, Any]], crlf: bool, ascii_only: bool) -> list[bytes]:
    end = b"\r\n" if crlf else b"\n"
    return [json.dumps(example, ensure_ascii=ascii_only).encode() + end for example in examples]


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(chat_examples(), min_size=1, max_size=12), st.booleans(), st.booleans())
def test_well_formed_chat_files_pass(examples: list[dict[str, Any]], crlf: bool, ascii_only: bool) -> None:
    report = check_lines(file_lines(examples, crlf, ascii_only))
    assert report.ok, report.problems
    assert report.n_examples == len(examples)


@st.composite
def prompt_completion_examples(draw: st.DrawFn) -> dict[str, Any]:
    return {"prompt": draw(TEXT), "completion": draw(TEXT.filter(str.strip))}


@st.composite
def preference_examples(draw: st.DrawFn) -> dict[str, Any]:
    conversation = draw(chat_examples())["messages"]
    prompt = conversation[: max(i for i, m in enumerate(conversation) if m["role"] == "user") + 1]
    return {
        "input": {"messages": prompt},
        "preferred_output": [{"role": "assistant", "content": draw(TEXT)}],
        "non_preferred_output": [{"role": "assistant", "content": draw(TEXT)}],
    }


@st.composite
def classification_examples(draw: st.DrawFn) -> dict[str, Any]:
    label = draw(st.one_of(TEXT.filter(lambda t: t.strip() != ""), st.integers(), st.booleans()))
    return {"text": draw(TEXT.filter(str.strip)), "label": label}


EXAMPLES_BY_FORMAT = {
    CHAT: chat_examples(),
    PROMPT_COMPLETION: prompt_completion_examples(),
    PREFERENCE: preference_examples(),
    CLASSIFICATION: classification_examples(),
}


@settings(max_examples=60, deadline=None, database=None)
@given(st.sampled_from(sorted(EXAMPLES_BY_FORMAT)), st.data())
def test_well_formed_files_of_every_format_pass(fmt: str, data: st.DataObject) -> None:
    examples = data.draw(st.lists(EXAMPLES_BY_FORMAT[fmt], min_size=1, max_size=10))
    report = check_lines(
        file_lines(examples, crlf=data.draw(st.booleans()), ascii_only=data.draw(st.booleans()))
    )
    assert report.ok, report.problems
    assert report.formats == {fmt: len(examples)}
    if fmt == CLASSIFICATION:
        assert report.label_names == sorted({str(example["label"]) for example in examples})


# One breakage of a well-formed example at message `index`, and the problem it must cause.
BREAKAGES = {
    "bad role": (
        lambda m: {**m, "role": "robot"},
        "messages[{i}].role must be one of system, user, assistant, tool",
    ),
    "no role": (lambda m: {k: v for k, v in m.items() if k != "role"}, "messages[{i}].role is missing"),
    "content number": (
        lambda m: {**m, "content": 7},
        "messages[{i}].content must be a string, or a list of text parts",
    ),
    "unknown key": (lambda m: {**m, "colour": "red"}, "messages[{i}] has unrecognized key 'colour'"),
    "not an object": (lambda m: [m], "messages[{i}] must be an object with 'role' and 'content'"),
}


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.lists(chat_examples(), min_size=1, max_size=8),
    st.sampled_from(sorted(BREAKAGES)),
    st.data(),
)
def test_each_breakage_is_reported_with_its_line_and_field(
    examples: list[dict[str, Any]], breakage: str, data: st.DataObject
) -> None:
    line_index = data.draw(st.integers(0, len(examples) - 1))
    example = examples[line_index]
    index = data.draw(st.integers(0, len(example["messages"]) - 1))
    # A tool message answering a broken call, or a broken assistant message, may add problems of its
    # own; the one this breakage causes must be among them.
    if example["messages"][index].get("tool_calls"):
        index += 1
    change, problem = BREAKAGES[breakage]
    example["messages"][index] = change(example["messages"][index])
    blank_lines_before = data.draw(st.integers(0, 2))
    body = [b"\n"] * blank_lines_before + file_lines(examples, crlf=False, ascii_only=False)
    report = check_lines(body)
    assert report.n_bad_lines == 1
    assert report.n_examples == len(examples) - 1
    assert f"line {blank_lines_before + line_index + 1}: {problem.format(i=index)}" in report.problems
