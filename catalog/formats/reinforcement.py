"""The reinforcement format: {"messages": [prompt...], "tools": [...]?, any other fields}.

The messages are the prompt the model answers during training; every other field of the line is the
`item` a grader reads (`{{item.answer}}`). The prompt ends with a message the model answers (a user
or tool message, or a system message alone), never with an assistant's.

Its keys are the chat format's, so it is not told by keys at upload: a chat-keyed line with no
assistant message to learn from is read as a reinforcement prompt there (registry.read_example), and
a reinforcement job reads its files in this format alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalog.formats.messages import Message, Tool, read_messages, read_tools

KEYS = ("messages",)
# The chat format's problem for a line without an assistant message: at upload, such a line is a prompt.
NO_ASSISTANT = "messages has no assistant message to learn from (one with weight 1)"


@dataclass(slots=True, kw_only=True)
class ReinforcementExample:
    messages: list[Message]
    """The prompt."""
    tools: list[Tool] | None = None
    item: dict[str, Any] = field(default_factory=dict)
    """The whole line: what graders read as `item`."""


def read_reinforcement(value: dict[str, Any]) -> tuple[ReinforcementExample | None, list[str]]:
    messages, problems = read_messages(value["messages"], "messages")
    tools, _ = read_tools(value, "", problems)
    if messages is None or problems:
        return None, problems
    if messages[-1].role == "assistant":
        return None, [
            f"messages[{len(messages) - 1}] is an assistant message: a reinforcement prompt ends with the "
            "message the model answers (the model's answer is generated, then graded)"
        ]
    return ReinforcementExample(messages=messages, tools=tools, item=value), problems


def missing_item_fields(value: dict[str, Any], fields: set[str]) -> list[str]:
    """The problems of a line that lacks a field the job's grader reads as item.<field> (a dotted
    path for a nested one, item.address.city; a list is indexed by number, item.tags.0)."""
    return [
        f"has no field {name!r}, which the grader reads as {{{{item.{name}}}}}"
        for name in sorted(fields)
        if not _has_path(value, name.split("."))
    ]


def _has_path(value: Any, path: list[str]) -> bool:
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return False
    return True
