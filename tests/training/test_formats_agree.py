"""The API's validation and the trainer's loaders agree on every file: the same lines accepted, read as
the same examples, and a refused file refused by both at the same first bad line in the same words.

Over the corpus of messy files (tests/data/datasets) and, as a property, over generated files that mix
valid examples, broken ones and noise.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.files.validation import (
    CHAT,
    CLASSIFICATION,
    PREFERENCE,
    PROMPT_COMPLETION,
    DatasetReport,
    check_lines,
)
from catalog.formats import (
    ChatExample,
    ClassificationExample,
    Message,
    PreferenceExample,
    PromptCompletionExample,
    read_example,
)
from tests.unit.test_validation_properties import BREAKAGES, EXAMPLES_BY_FORMAT
from worker.training.data import DatasetError, load_examples, read_examples
from worker.training.methods.classification import read_labelled_text
from worker.training.methods.dpo import read_preferences

DATASETS = Path(__file__).parents[1] / "data" / "datasets"
CORPUS = sorted(path.name for path in DATASETS.iterdir() if path.suffix in (".jsonl", ".json"))
METHOD_OF_FORMAT = {
    CHAT: "supervised",
    PROMPT_COMPLETION: "supervised",
    PREFERENCE: "dpo",
    CLASSIFICATION: "classification",
}


def api_view(path: Path) -> tuple[DatasetReport, dict[int, dict[str, Any]]]:
    """check_lines's report, and the lines it accepted with their JSON objects.

    check_lines gives a token counter each example it accepts, as it reads: the counter sees which line
    was read last, which is the accepted one.
    """
    accepted: dict[int, dict[str, Any]] = {}
    read = 0

    def numbered_lines() -> Any:
        nonlocal read
        with path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                read = number
                yield raw

    def count(example: dict[str, Any]) -> int:
        accepted[read] = example
        return 0

    return check_lines(numbered_lines(), count_tokens=count), accepted


def message_view(message: Message) -> dict[str, Any]:
    """What a trainer's message must say, from the typed model: text joined, arguments parsed."""
    return {
        "role": message.role,
        "content": message.text,
        "name": message.name,
        "weight": message.weight,
        "tool_call_id": message.tool_call_id,
        "tool_calls": [
            (call.id, call.function.name, json.loads(call.function.arguments))
            for call in message.tool_calls or []
        ],
    }


def trainer_message_view(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": message["role"],
        "content": message.get("content"),
        "name": message.get("name"),
        "weight": message.get("weight"),
        "tool_call_id": message.get("tool_call_id"),
        "tool_calls": [
            (call.get("id"), call["function"]["name"], call["function"]["arguments"])
            for call in message.get("tool_calls") or []
        ],
    }


def expected_from_typed(example: Any) -> Any:
    """The trainer's example for a typed example, in the views above."""
    if isinstance(example, PromptCompletionExample):
        messages = [
            {"role": "user", "content": example.prompt},
            {"role": "assistant", "content": example.completion},
        ]
        return {"messages": [trainer_message_view(m) for m in messages], "tools": None}
    if isinstance(example, ChatExample):
        tools = [tool.definition for tool in example.tools] if example.tools is not None else None
        return {"messages": [message_view(m) for m in example.messages], "tools": tools}
    if isinstance(example, PreferenceExample):
        source = example.input
        return {
            "prompt": [message_view(m) for m in source.messages],
            "chosen": [message_view(m) for m in example.preferred_output],
            "rejected": [message_view(m) for m in example.non_preferred_output],
            "tools": [tool.definition for tool in source.tools] if source.tools is not None else None,
        }
    assert isinstance(example, ClassificationExample)
    return (example.text, example.label_name)


def trainer_view(method: str, path: Path) -> list[Any]:
    """The trainer's loader for `method` over the file, in the views above."""
    if method == "supervised":
        return [
            {
                "messages": [trainer_message_view(m) for m in example["messages"]],
                "tools": example.get("tools"),
            }
            for example in load_examples(path)
        ]
    if method == "dpo":
        return [
            {
                "prompt": [trainer_message_view(m) for m in row["prompt"]],
                "chosen": [trainer_message_view(m) for m in row["chosen"]],
                "rejected": [trainer_message_view(m) for m in row["rejected"]],
                "tools": row.get("tools"),
            }
            for row in read_preferences(str(path), "training")
        ]
    return read_labelled_text(str(path), "training")


def assert_agree(path: Path) -> None:
    report, accepted = api_view(path)
    # A file whose format can't be told is refused on its first line; any loader must say so.
    methods = (
        [METHOD_OF_FORMAT[report.file_format]]
        if report.file_format
        else sorted(set(METHOD_OF_FORMAT.values()))
    )
    for method in methods:
        if report.ok and report.n_examples:
            lines = [line for line, _ in read_examples(path, method)]
            assert lines == sorted(accepted)
            typed = [read_example(accepted[line])[0] for line in lines]
            assert trainer_view(method, path) == [expected_from_typed(example) for example in typed]
            continue
        with pytest.raises(DatasetError) as raised:
            trainer_view(method, path)
        if report.ok:  # only blank lines
            assert raised.value.line is None and "no examples" in str(raised.value)
        else:
            first_problem = report.problems[0]
            assert str(raised.value) == first_problem
            assert first_problem.startswith(f"line {raised.value.line}: ")


@pytest.mark.parametrize("name", CORPUS)
def test_the_api_and_the_trainer_read_each_corpus_file_alike(name: str) -> None:
    assert_agree(DATASETS / name)


def test_the_corpus_holds_accepted_and_refused_files_of_every_format() -> None:
    # So that the agreement above is tested on both sides of every format.
    seen = set()
    for name in CORPUS:
        report, _ = api_view(DATASETS / name)
        seen.add((report.file_format, report.ok))
    for fmt in (CHAT, PROMPT_COMPLETION, PREFERENCE, CLASSIFICATION):
        assert (fmt, True) in seen
    assert (CHAT, False) in seen and (PROMPT_COMPLETION, False) in seen


# ---- as a property -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    ["messages", "prompt", "completion", "input", "preferred_output", "non_preferred_output", "text", "label"]
)
ODD_OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=3).map(lambda value: json.dumps(value).encode())
NOISE = st.sampled_from(
    [
        b"",
        b"   ",
        b"{bad",
        b"[1]",
        b'{"a": NaN}',
        b'{"prompt": "a", "prompt": "b"}',
        b"\xef\xbb\xbf{}",
        b"\xff",
    ]
)


@st.composite
def messy_files(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from(sorted(EXAMPLES_BY_FORMAT)))
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["valid", "valid", "broken chat", "odd object", "noise", "other format"]))
        if kind == "valid":
            line = json.dumps(draw(EXAMPLES_BY_FORMAT[fmt])).encode()
        elif kind == "other format":
            line = json.dumps(
                draw(EXAMPLES_BY_FORMAT[draw(st.sampled_from(sorted(EXAMPLES_BY_FORMAT)))])
            ).encode()
        elif kind == "broken chat":
            example = draw(EXAMPLES_BY_FORMAT[CHAT])
            index = draw(st.integers(0, len(example["messages"]) - 1))
            change, _ = BREAKAGES[draw(st.sampled_from(sorted(BREAKAGES)))]
            example["messages"][index] = change(example["messages"][index])
            line = json.dumps(example).encode()
        elif kind == "odd object":
            line = draw(ODD_OBJECTS)
        else:
            line = draw(NOISE)
        lines.append(line)
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    return end.join(lines) + draw(st.sampled_from([b"", end]))


@settings(max_examples=150, deadline=None, database=None)
@given(messy_files())
def test_the_api_and_the_trainer_read_any_file_alike(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "train.jsonl"
        path.write_bytes(content)
        assert_agree(path)
