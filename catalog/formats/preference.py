"""The preference format of OpenAI's DPO method:

    {"input": {"messages": [...], "tools": [...]?, "parallel_tool_calls": bool?},
     "preferred_output": [assistant message], "non_preferred_output": [assistant message]}

Beyond OpenAI's published rules, the input can't end with an assistant message: the outputs are the
answer to the input, and the trainer (TRL's DPO) would read a prompt ending with an answer as one to
continue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.formats.messages import Message, Tool, read_message, read_messages, read_tools

KEYS = ("input", "preferred_output", "non_preferred_output")
OUTPUT_KEYS = ("preferred_output", "non_preferred_output")


@dataclass(slots=True, kw_only=True)
class PreferenceInput:
    """What both answers reply to."""

    messages: list[Message]
    tools: list[Tool] | None = None
    parallel_tool_calls: bool | None = None


@dataclass(slots=True, kw_only=True)
class PreferenceExample:
    """One line of a preference file: a comparison of two answers to the same input."""

    input: PreferenceInput
    preferred_output: list[Message]
    """One assistant message: the answer to learn to prefer."""
    non_preferred_output: list[Message]
    """One assistant message: the answer to learn to prefer less."""


def read_preference(value: dict[str, Any]) -> tuple[PreferenceExample | None, list[str]]:
    """The example, or None and the problems of the line."""
    problems: list[str] = []
    source = value.get("input")
    prompt = None
    if not isinstance(source, dict):
        problems.append("input must be an object with 'messages'")
    else:
        messages, problems = read_messages(source.get("messages"), "input.messages")
        tools, parallel_tool_calls = read_tools(source, "input.", problems)
        if messages is not None and messages[-1].role == "assistant":
            problems.append("input.messages must end before the answer, not with an assistant message")
        if messages is not None:
            prompt = PreferenceInput(messages=messages, tools=tools, parallel_tool_calls=parallel_tool_calls)
    outputs: dict[str, Message | None] = {}
    for key in OUTPUT_KEYS:
        output = value.get(key)
        if key not in value:
            problems.append(f"{key} is missing")
        elif not isinstance(output, list) or len(output) != 1:
            problems.append(f"{key} must be a list of one assistant message")
        else:
            outputs[key] = read_message(output[0], f"{key}[0]", ("assistant",), None, problems)
    if problems or prompt is None:
        return None, problems
    preferred, non_preferred = outputs["preferred_output"], outputs["non_preferred_output"]
    assert preferred is not None and non_preferred is not None  # no problems: both were read
    return (
        PreferenceExample(input=prompt, preferred_output=[preferred], non_preferred_output=[non_preferred]),
        problems,
    )
