"""The dataset validator as a property: any well-formed file passes, and one breakage anywhere is reported
with its line and field."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.files.validation import (
    CHAT,
    CLASSIFICATION,
    PREFERENCE,
    PROMPT_COMPLETION,
    check_lines,
)

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
