"""The dataset validator over well-formed and broken examples, as a table."""

from __future__ import annotations

import json

import pytest

from api.files.validation import (
    CHAT,
    PREFERENCE,
    PROMPT_COMPLETION,
    DatasetReport,
    check_dataset,
    check_lines,
)


def lines(*examples: object) -> list[bytes]:
    return [json.dumps(e).encode() + b"\n" for e in examples]


def chat(*messages: dict, **extra: object) -> dict:
    return {"messages": list(messages), **extra}


USER = {"role": "user", "content": "What colour is a lime?"}
ASSISTANT = {"role": "assistant", "content": "green"}

GOOD = [
    pytest.param(chat(USER, ASSISTANT), CHAT, id="chat"),
    pytest.param(chat({"role": "system", "content": "Be brief."}, USER, ASSISTANT), CHAT, id="system"),
    pytest.param(
        chat(USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 1}), CHAT, id="weights"
    ),
    pytest.param(
        chat(
            USER,
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ASSISTANT,
            tools=[{"type": "function", "function": {"name": "f"}}],
            parallel_tool_calls=False,
        ),
        CHAT,
        id="tools",
    ),
    pytest.param(
        chat({"role": "user", "content": "Grüße 👋 日本"}, {"role": "assistant", "content": "¡Hola!"}),
        CHAT,
        id="unicode",
    ),
    pytest.param(chat({"role": "user", "content": ""}, ASSISTANT), CHAT, id="empty-user-turn"),
    pytest.param({"prompt": "2+2=", "completion": "4"}, PROMPT_COMPLETION, id="prompt-completion"),
    pytest.param(
        {
            "input": {"messages": [USER]},
            "preferred_output": [ASSISTANT],
            "non_preferred_output": [{"role": "assistant", "content": "blue"}],
        },
        PREFERENCE,
        id="preference",
    ),
]


@pytest.mark.parametrize(("example", "fmt"), GOOD)
def test_well_formed_examples_pass(example: dict, fmt: str) -> None:
    report = check_lines(lines(example))
    assert report.ok, report.problems
    assert report.n_examples == 1
    assert report.formats == {fmt: 1}


BAD = [
    pytest.param(b"[1, 2]", "line 1: must be a JSON object, not an array", id="array"),
    pytest.param(b'"text"', "line 1: must be a JSON object, not a string", id="string"),
    pytest.param(b"{oops", "line 1: is not valid JSON", id="not-json"),
    pytest.param(b"\xff\xfe{}", "line 1: is not valid UTF-8", id="not-utf8"),
    pytest.param(b'{"text": "hi"}', "line 1: must have 'messages'", id="unknown-format"),
    pytest.param(
        json.dumps({"messages": []}).encode(), "line 1: messages must be a non-empty list", id="no-messages"
    ),
    pytest.param(
        json.dumps(chat({"role": "robot", "content": "x"}, ASSISTANT)).encode(),
        "line 1: messages[0].role must be one of system, user, assistant, tool",
        id="bad-role",
    ),
    pytest.param(
        json.dumps(chat({"content": "x"}, ASSISTANT)).encode(),
        "line 1: messages[0].role is missing",
        id="no-role",
    ),
    pytest.param(
        json.dumps(chat({"role": "user"}, ASSISTANT)).encode(),
        "line 1: messages[0].content is missing",
        id="no-content",
    ),
    pytest.param(
        json.dumps(chat({"role": "user", "content": 5}, ASSISTANT)).encode(),
        "line 1: messages[0].content must be a string",
        id="content-number",
    ),
    pytest.param(
        json.dumps(chat(USER, {**ASSISTANT, "mood": "happy"})).encode(),
        "line 1: messages[1] has unrecognized key 'mood'",
        id="unknown-key",
    ),
    pytest.param(
        json.dumps(chat({**USER, "weight": 1}, ASSISTANT)).encode(),
        "line 1: messages[0].weight is only allowed on assistant messages",
        id="weight-on-user",
    ),
    pytest.param(
        json.dumps(chat(USER, {**ASSISTANT, "weight": 2})).encode(),
        "line 1: messages[1].weight must be 0 or 1",
        id="weight-2",
    ),
    pytest.param(
        json.dumps(chat(USER)).encode(),
        "line 1: messages has no assistant message to learn from",
        id="no-assistant",
    ),
    pytest.param(
        json.dumps(chat(USER, {**ASSISTANT, "weight": 0})).encode(),
        "line 1: messages has no assistant message to learn from",
        id="all-weight-0",
    ),
    pytest.param(json.dumps({"prompt": "x"}).encode(), "line 1: completion is missing", id="no-completion"),
    pytest.param(
        json.dumps({"input": {"messages": [USER]}, "preferred_output": [ASSISTANT]}).encode(),
        "line 1: non_preferred_output is missing",
        id="half-preference",
    ),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "line 1: is nested too deeply", id="json-bomb"),
]


@pytest.mark.parametrize(("line", "problem"), BAD)
def test_broken_examples_name_line_and_field(line: bytes, problem: str) -> None:
    report = check_lines([line])
    assert not report.ok
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


def test_a_very_long_line_is_one_example() -> None:
    report = check_lines(lines(chat(USER, {"role": "assistant", "content": "x" * 2_000_000})))
    assert report.ok and report.n_examples == 1


def test_only_the_first_problems_are_kept_but_all_bad_lines_are_counted() -> None:
    report = check_lines([b"{bad"] * 50)
    assert report.n_bad_lines == 50
    assert len(report.problems) == 10
    assert report.summary().startswith("50 invalid line(s): line 1: is not valid JSON")


class TestDatasetRules:
    def report(self, n: int, fmt: str = CHAT) -> DatasetReport:
        report = DatasetReport(n_examples=n)
        report.formats[fmt] = n
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
        assert issue is not None and "12 preference example(s)" in issue.message
        assert check_dataset(self.report(12, PREFERENCE), "dpo") is None
