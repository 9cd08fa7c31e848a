"""The dataset rules (how many examples, which format for which method, labels) and the corpus of messy
files in tests/data/datasets."""

from __future__ import annotations

import pytest

from api.files.validation import (
    CHAT,
    CLASSIFICATION,
    PREFERENCE,
    PROMPT_COMPLETION,
    DatasetReport,
    check_dataset,
    check_lines,
)
from tests.unit.validation_examples import check_file

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
