"""The chat format: {"messages": [...], "tools": [...]?, "parallel_tool_calls": bool?}.

Other top-level keys (an id, a source) are allowed and ignored, as OpenAI ignores them. A
conversation may start with any role, an assistant's greeting included: OpenAI's format has no rule
about the first message, and each assistant message is learned from the messages before it, if any.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.formats.messages import Message, Tool, read_messages, read_tools

KEYS = ("messages",)


@dataclass(slots=True, kw_only=True)
class ChatExample:
    """One line of a chat file (the fine-tuning format of OpenAI's supervised method)."""

    messages: list[Message]
    """The conversation; training learns its assistant messages (those of weight 1)."""
    tools: list[Tool] | None = None
    """The functions the assistant may call, for the chat template to render; None when absent."""
    parallel_tool_calls: bool | None = None
    """Whether the assistant may make several tool calls at once; None when absent."""


def read_chat(value: dict[str, Any]) -> tuple[ChatExample | None, list[str]]:
    """The example, or None and the problems of the line."""
    messages, problems = read_messages(value["messages"], "messages")
    tools, parallel_tool_calls = read_tools(value, "", problems)
    if messages is None or problems:
        return None, problems
    if not any(message.trained for message in messages):
        return None, ["messages has no assistant message to learn from (one with weight 1)"]
    return ChatExample(messages=messages, tools=tools, parallel_tool_calls=parallel_tool_calls), problems
