"""Chat messages, tool calls and tools, as OpenAI's chat fine-tuning format writes them.

Read from parsed JSON by functions that append problems ("messages[1].role must be one of ...") to
the list they are given and return the typed value only when they appended none, so that a line
reports all its problems and a valid line costs one pass.

The models are plain (not frozen) slotted dataclasses: a frozen dataclass costs four times as much to
build, and validating a 100 MB upload builds one per message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from catalog.formats.json_lines import MAX_REPORTED_PROBLEMS, json_text_problem

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
)


@dataclass(slots=True, kw_only=True)
class TextPart:
    """A content part of type "text" (OpenAI's ChatCompletionContentPartText)."""

    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True, kw_only=True)
class FunctionCall:
    """The function a tool call invokes."""

    name: str
    """The function's name: one of the example's tools, by convention (not checked)."""
    arguments: str
    """The arguments as a string of JSON, as the model writes them (checked to be JSON)."""

    def parsed_arguments(self) -> Any:
        """The arguments as a JSON value: what Hugging Face chat templates render (`| tojson`)."""
        return json.loads(self.arguments)


@dataclass(slots=True, kw_only=True)
class ToolCall:
    """One entry of an assistant message's `tool_calls` (OpenAI's ChatCompletionMessageToolCall)."""

    id: str | None
    """What the tool message answering this call names as its `tool_call_id`; may be left out."""
    function: FunctionCall
    type: Literal["function"] = "function"


@dataclass(slots=True, kw_only=True)
class Message:
    """One message of a conversation (OpenAI's chat completion message, plus fine-tuning's `weight`)."""

    role: Role
    content: str | list[TextPart] | None
    """A string, or text parts; None only for an assistant message that makes tool calls."""
    name: str | None = None
    """The participant's name, which some chat templates render."""
    refusal: str | None = None
    """An assistant's refusal message."""
    tool_calls: list[ToolCall] | None = None
    """Assistant messages only: the calls it makes. None when the key is absent."""
    tool_call_id: str | None = None
    """Tool messages only: the id of the earlier tool call this message answers."""
    function_call: Any = None
    """Deprecated by OpenAI for tool_calls; kept as written, not checked, but it lets content be null."""
    weight: Literal[0, 1] | None = None
    """Assistant messages only: 0 keeps the message as context without training on it. None: absent (1)."""

    @property
    def text(self) -> str | None:
        """The content as one string: text parts joined (as OpenAI reads them), None when there is none."""
        if self.content is None or isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    @property
    def trained(self) -> bool:
        """Whether training learns this message: an assistant message with weight 1 or none."""
        return self.role == "assistant" and self.weight != 0


@dataclass(slots=True, kw_only=True)
class Tool:
    """One entry of `tools` (OpenAI's ChatCompletionTool: {"type": "function", "function": {"name",
    "description", "parameters", "strict"}}).

    Only function.name is checked: the rest is a JSON schema for the chat template to render, which
    nothing here reads, so the tool is kept as written.
    """

    name: str
    """function.name."""
    definition: dict[str, Any]
    """The tool object as written, which chat templates receive."""


def read_messages(value: Any, where: str) -> tuple[list[Message] | None, list[str]]:
    """A conversation's messages (None if any is wrong) and its problems. Tool messages must answer
    a tool call made earlier in the same list."""
    if not isinstance(value, list) or not value:
        return None, [f"{where} must be a non-empty list of messages"]
    problems: list[str] = []
    messages: list[Message] = []
    call_ids: set[str] = set()  # the ids of the tool calls made so far, which tool messages answer
    for index, item in enumerate(value):
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            # Only the first are reported: a line of a million empty messages would otherwise build
            # millions of messages, hundreds of megabytes, to throw away.
            problems.append(f"{where}[{index}:] not checked: the messages before have too many problems")
            break
        message = read_message(item, f"{where}[{index}]", ROLES, call_ids, problems)
        if message is not None:
            messages.append(message)
    return (None if problems else messages), problems


def read_message(
    value: Any, where: str, roles: tuple[str, ...], call_ids: set[str] | None, problems: list[str]
) -> Message | None:
    """One message, or None after appending its problems. `call_ids` collects the ids of the tool
    calls made, and a tool message must answer one of them; None where no tool message may be."""
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object with 'role' and 'content'")
        return None
    role = value.get("role")
    content = value.get("content")
    if isinstance(content, str) and isinstance(role, str) and role in roles and role != "tool":
        # Most messages are a role and a string, maybe a weight, and a 100 MB upload has millions: the
        # checks below would find nothing else to check. (A tool message must name its tool call.)
        if len(value) == 2:
            return Message(role=value["role"], content=content)
        written = value.get("weight")
        if len(value) == 3 and role == "assistant" and written in (0, 1) and not isinstance(written, bool):
            return Message(role=value["role"], content=content, weight=1 if written == 1 else 0)
    n_before = len(problems)
    if not value.keys() <= MESSAGE_KEYS:
        problems += [f"{where} has unrecognized key {key!r}" for key in value if key not in MESSAGE_KEYS]
    if role is None:
        problems.append(f"{where}.role is missing")
    elif not isinstance(role, str) or role not in roles:
        problems.append(f"{where}.role must be one of {', '.join(roles)}")
    tool_calls_value = value.get("tool_calls")
    has_tool_calls = bool(tool_calls_value or value.get("function_call"))
    content = _read_content(content, where, role, has_tool_calls, problems)
    name = value.get("name")
    if "name" in value and not isinstance(name, str):
        problems.append(f"{where}.name must be a string")
    refusal = value.get("refusal")
    if refusal is not None and not isinstance(refusal, str):
        problems.append(f"{where}.refusal must be a string")
    weight: Literal[0, 1] | None = None
    if "weight" in value:
        if role != "assistant":
            problems.append(f"{where}.weight is only allowed on assistant messages")
        elif value["weight"] not in (0, 1) or isinstance(value["weight"], bool):
            problems.append(f"{where}.weight must be 0 or 1")
        else:
            weight = 1 if value["weight"] == 1 else 0  # 1.0 is 1 in JSON
    tool_calls = None
    if "tool_calls" in value:
        if role != "assistant":
            problems.append(f"{where}.tool_calls is only allowed on assistant messages")
        tool_calls = _read_tool_calls(tool_calls_value, f"{where}.tool_calls", call_ids, problems)
    tool_call_id = None
    if role == "tool" and call_ids is not None:
        tool_call_id = value.get("tool_call_id")
        if not isinstance(tool_call_id, str):
            problems.append(f"{where}.tool_call_id must be the id of the tool call it answers")
        elif tool_call_id not in call_ids:
            problems.append(f"{where}.tool_call_id {tool_call_id!r} answers no earlier tool call")
    if len(problems) > n_before:
        return None
    return Message(
        role=value["role"],
        content=content,
        name=name,
        refusal=refusal,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        function_call=value.get("function_call"),
        weight=weight,
    )


def read_tools(
    value: dict[str, Any], where: str, problems: list[str]
) -> tuple[list[Tool] | None, bool | None]:
    """The `tools` and `parallel_tool_calls` of an example (or of a preference example's input, with
    `where` "input."); None where absent."""
    tools = None
    if "tools" in value:
        if not isinstance(value["tools"], list):
            problems.append(f"{where}tools must be a list")
        else:
            tools = []
            for index, tool in enumerate(value["tools"]):
                function = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    problems.append(
                        f"{where}tools[{index}] must be an object with a 'function' object that has a 'name'"
                    )
                else:
                    tools.append(Tool(name=function["name"], definition=tool))
    parallel_tool_calls = value.get("parallel_tool_calls")
    if "parallel_tool_calls" in value and not isinstance(parallel_tool_calls, bool):
        problems.append(f"{where}parallel_tool_calls must be true or false")
    return tools, parallel_tool_calls


def _read_content(
    content: Any, where: str, role: Any, has_tool_calls: bool, problems: list[str]
) -> str | list[TextPart] | None:
    if isinstance(content, str):
        return content
    if content is None:
        if not (role == "assistant" and has_tool_calls):
            problems.append(f"{where}.content is missing")
        return None
    if not isinstance(content, list):
        problems.append(f"{where}.content must be a string, or a list of text parts")
        return None
    if not content:
        problems.append(f"{where}.content is an empty list")
        return None
    parts = []
    for index, part in enumerate(content):
        text = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
        if isinstance(text, str):
            parts.append(TextPart(text=text))
        else:
            problems.append(
                f'{where}.content[{index}] must be a text part ({{"type": "text", "text": ...}}): '
                "only text is trained on"
            )
    return parts


def _read_tool_calls(
    value: Any, where: str, call_ids: set[str] | None, problems: list[str]
) -> list[ToolCall] | None:
    if not isinstance(value, list):
        problems.append(f"{where} must be a list")
        return None
    calls = []
    for index, call in enumerate(value):
        at = f"{where}[{index}]"
        n_before = len(problems)
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            problems.append(f"{at} must be an object with a 'function' object")
            continue
        if call.get("type", "function") != "function":
            problems.append(f"{at}.type must be 'function'")
        call_id = call.get("id")
        if "id" in call:
            if not isinstance(call_id, str):
                problems.append(f"{at}.id must be a string")
            elif call_ids is not None:
                call_ids.add(call_id)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{at}.function.name must be a non-empty string")
        arguments = function.get("arguments")
        problem = json_text_problem(arguments, f"{at}.function.arguments")
        if problem is not None:
            problems.append(problem)
        if len(problems) == n_before:
            calls.append(
                ToolCall(
                    id=call_id, function=FunctionCall(name=function["name"], arguments=function["arguments"])
                )
            )
    return calls
