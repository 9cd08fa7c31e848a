"""The dataset validator over tables of well-formed and broken examples: formats, line numbers, encodings,
long lines, the problems kept, context length."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from api.files.validation import (
    MAX_LABELS,
    MAX_REPORTED_PROBLEMS,
    PROMPT_COMPLETION,
    ExampleRejected,
    check_dataset,
    check_lines,
    example_format,
)
from catalog.formats import reading_formats
from tests.unit.validation_examples import (
    ASSISTANT,
    BAD,
    GOOD,
    PREFERENCE_EXAMPLE,
    USER,
    chat,
    encoded,
    lines,
)


@pytest.mark.parametrize(("example", "fmt"), GOOD)
def test_well_formed_examples_pass(example: dict, fmt: str) -> None:
    report = check_lines(lines(example))
    assert report.ok, report.problems
    assert report.n_examples == 1
    assert report.formats == {fmt: 1}
    assert example_format(example) == fmt


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
