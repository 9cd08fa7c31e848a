"""catalog.formats on its own: a line gives a typed example field for field, or its problems; the
package stands alone (the API image has no torch, and the trainer no api/)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from catalog.formats import (
    CHAT,
    CLASSIFICATION,
    FORMATS_BY_METHOD,
    PREFERENCE,
    PROMPT_COMPLETION,
    ChatExample,
    ClassificationExample,
    FileReader,
    FunctionCall,
    Message,
    PreferenceExample,
    PromptCompletionExample,
    TextPart,
    ToolCall,
    parse_line,
    wrong_format,
)

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"fruit": "lime"}'}}


def line(value: object) -> bytes:
    return json.dumps(value).encode() + b"\n"


class TestParseLine:
    def test_a_chat_line_is_a_typed_example_field_for_field(self) -> None:
        parsed = parse_line(
            line(
                {
                    "messages": [
                        {"role": "user", "name": "ana", "content": [{"type": "text", "text": "Lime?"}]},
                        {"role": "assistant", "content": None, "tool_calls": [CALL]},
                        {"role": "tool", "tool_call_id": "c1", "content": "green"},
                        {"role": "assistant", "content": "Green.", "weight": 1, "refusal": None},
                    ],
                    "tools": [TOOL],
                    "parallel_tool_calls": False,
                    "id": 7,
                }
            )
        )
        assert parsed.problems == [] and parsed.format == CHAT
        example = parsed.example
        assert isinstance(example, ChatExample)
        assert example.messages == [
            Message(role="user", name="ana", content=[TextPart(text="Lime?")]),
            Message(
                role="assistant",
                content=None,
                tool_calls=[
                    ToolCall(id="c1", function=FunctionCall(name="lookup", arguments='{"fruit": "lime"}'))
                ],
            ),
            Message(role="tool", content="green", tool_call_id="c1"),
            Message(role="assistant", content="Green.", weight=1),
        ]
        assert example.messages[0].text == "Lime?"
        assert example.messages[1].tool_calls is not None
        assert example.messages[1].tool_calls[0].function.parsed_arguments() == {"fruit": "lime"}
        assert [(tool.name, tool.definition) for tool in example.tools or []] == [("lookup", TOOL)]
        assert example.parallel_tool_calls is False

    def test_the_other_formats_are_typed_too(self) -> None:
        answer = {"role": "assistant", "content": "a"}
        preference = parse_line(
            line(
                {
                    "input": {"messages": [{"role": "user", "content": "q"}]},
                    "preferred_output": [answer],
                    "non_preferred_output": [{"role": "assistant", "content": "b"}],
                }
            )
        ).example
        assert isinstance(preference, PreferenceExample)
        assert [m.content for m in (*preference.input.messages, *preference.preferred_output)] == ["q", "a"]
        assert preference.non_preferred_output[0].content == "b" and preference.input.tools is None
        assert parse_line(line({"prompt": "", "completion": "4"})).example == PromptCompletionExample(
            prompt="", completion="4"
        )
        classified = parse_line(line({"text": "t", "label": True})).example
        assert classified == ClassificationExample(text="t", label=True)
        assert classified.label_name == "True"

    def test_a_bad_line_gives_its_problems_and_no_example(self) -> None:
        parsed = parse_line(b'{"messages": [{"role": "robot", "content": "x", "content": "y"}]}')
        assert parsed.example is None and parsed.format == CHAT
        assert parsed.problems == [
            "has the key 'content' more than once in one object",
            "messages[0].role must be one of system, user, assistant, tool",
        ]

    @pytest.mark.parametrize("weight", [False, True, 2, 0.5, None, "1"])
    def test_a_weight_is_0_or_1_and_nothing_else(self, weight: object) -> None:
        user = {"role": "user", "content": "q"}
        parsed = parse_line(
            line({"messages": [user, {"role": "assistant", "content": "a", "weight": weight}]})
        )
        assert parsed.problems == ["messages[1].weight must be 0 or 1"]

    def test_a_weight_of_1_0_is_1(self) -> None:
        user = {"role": "user", "content": "q"}
        parsed = parse_line(line({"messages": [user, {"role": "assistant", "content": "a", "weight": 1.0}]}))
        assert isinstance(parsed.example, ChatExample)
        assert parsed.example.messages[1].weight == 1 and type(parsed.example.messages[1].weight) is int


class TestFileReader:
    def test_the_first_line_with_a_format_decides_the_file_s(self) -> None:
        reader = FileReader()
        assert reader.read(1, b"\xef\xbb\xbf\r\n") is None  # a BOM, then a blank line
        first = reader.read(2, line({"prompt": "a", "completion": "b"}))
        second = reader.read(3, line({"text": "a", "label": "b"}))
        assert first is not None and first.example is not None
        assert second is not None and second.example is None
        assert second.problems == [
            "is a classification example, but line 2 is a prompt/completion example: "
            "a file holds examples of one format"
        ]
        assert (reader.file_format, reader.file_format_line) == (PROMPT_COMPLETION, 2)


def test_each_method_names_what_it_needs() -> None:
    assert FORMATS_BY_METHOD == {
        "supervised": (CHAT, PROMPT_COMPLETION),
        "dpo": (PREFERENCE,),
        "classification": (CLASSIFICATION,),
        "reinforcement": ("reinforcement",),
    }
    assert wrong_format("supervised", CLASSIFICATION) == (
        "is a classification example, but the supervised method needs a 'messages' list or 'prompt' and "
        "'completion' strings"
    )


def test_the_package_imports_neither_api_nor_worker_nor_anything_heavy() -> None:
    # pydantic is allowed: the methods' registry (which says what formats a method reads) types
    # its hyperparameters with it, and the API and the trainer load it anyway.
    code = (
        "import sys, catalog.formats; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'api', 'worker', 'torch', 'transformers', "
        "'jinja2', 'sqlalchemy', 'fastapi'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
