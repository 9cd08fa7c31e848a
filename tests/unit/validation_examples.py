"""Examples for the dataset validator's tests: helpers that write JSON lines, and the tables of well-formed
and broken examples with the format or the problem each one must give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.files.validation import (
    CHAT,
    CLASSIFICATION,
    PREFERENCE,
    PROMPT_COMPLETION,
    DatasetReport,
    check_lines,
)

DATASETS = Path(__file__).parents[1] / "data" / "datasets"


def lines(*examples: object) -> list[bytes]:
    return [json.dumps(e).encode() + b"\n" for e in examples]


def chat(*messages: dict, **extra: object) -> dict:
    return {"messages": list(messages), **extra}


def check_file(name: str, **kwargs: Any) -> DatasetReport:
    with (DATASETS / name).open("rb") as file:
        return check_lines(file, **kwargs)


USER = {"role": "user", "content": "What colour is a lime?"}
ASSISTANT = {"role": "assistant", "content": "green"}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
PREFERENCE_EXAMPLE = {
    "input": {"messages": [USER]},
    "preferred_output": [ASSISTANT],
    "non_preferred_output": [{"role": "assistant", "content": "blue"}],
}

GOOD = [
    pytest.param(chat(USER, ASSISTANT), CHAT, id="chat"),
    pytest.param(chat({"role": "system", "content": "Be brief."}, USER, ASSISTANT), CHAT, id="system"),
    pytest.param(
        chat(USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 1}), CHAT, id="weights"
    ),
    pytest.param(
        chat(
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ASSISTANT,
            tools=[{"type": "function", "function": {"name": "f"}}],
            parallel_tool_calls=False,
        ),
        CHAT,
        id="tools",
    ),
    pytest.param(
        chat(
            USER,
            {"role": "assistant", "content": None, "tool_calls": [CALL, {**CALL, "id": "c2"}]},
            {"role": "tool", "tool_call_id": "c2", "content": "b"},
            {"role": "tool", "tool_call_id": "c1", "content": "a"},
            ASSISTANT,
        ),
        CHAT,
        id="parallel-tool-calls",
    ),
    pytest.param(
        chat({"role": "user", "content": [{"type": "text", "text": "Hi"}]}, ASSISTANT), CHAT, id="text-parts"
    ),
    pytest.param(
        chat({"role": "user", "content": "Grüße 👋 日本 مرحبا"}, {"role": "assistant", "content": "¡Hola!"}),
        CHAT,
        id="unicode",
    ),
    pytest.param(chat({"role": "user", "content": ""}, ASSISTANT), CHAT, id="empty-user-turn"),
    pytest.param(chat(USER, ASSISTANT, id=7, source="crm"), CHAT, id="extra-top-level-keys"),
    # A support bot that greets first, or a chat log whose first user turn was lost: OpenAI's format has
    # no rule about the first message.
    pytest.param(chat(ASSISTANT, USER, ASSISTANT), CHAT, id="assistant-first"),
    pytest.param(chat(ASSISTANT), CHAT, id="assistant-only"),
    pytest.param({"prompt": "2+2=", "completion": "4"}, PROMPT_COMPLETION, id="prompt-completion"),
    pytest.param({"prompt": "", "completion": "4"}, PROMPT_COMPLETION, id="empty-prompt"),
    pytest.param(PREFERENCE_EXAMPLE, PREFERENCE, id="preference"),
    pytest.param(
        {**PREFERENCE_EXAMPLE, "input": {"messages": [USER], "tools": [{"function": {"name": "f"}}]}},
        PREFERENCE,
        id="preference-tools",
    ),
    pytest.param({"text": "WIN A PRIZE", "label": "spam"}, CLASSIFICATION, id="classification"),
    pytest.param({"text": "fine", "label": 3}, CLASSIFICATION, id="classification-int"),
    pytest.param({"text": "fine", "label": False}, CLASSIFICATION, id="classification-bool"),
]


def encoded(example: object) -> bytes:
    return json.dumps(example).encode()


BAD = [
    pytest.param(b"[1, 2]", "line 1: must be a JSON object, not an array", id="array"),
    pytest.param(
        encoded([chat(USER, ASSISTANT)]),
        "line 1: must be a JSON object, not an array (write one example per line",
        id="array-of-examples",
    ),
    pytest.param(b'"text"', "line 1: must be a JSON object, not a string", id="string"),
    pytest.param(b"3.5", "line 1: must be a JSON object, not a number", id="number"),
    pytest.param(b"null", "line 1: must be a JSON object, not null", id="null"),
    pytest.param(b"{oops", "line 1: is not valid JSON", id="not-json"),
    pytest.param(b"{'prompt': 'x'}", "line 1: is not valid JSON (Expecting property name", id="python-repr"),
    pytest.param(
        b"[",
        "line 1: is not valid JSON (Expecting value at column 2); the file looks like one JSON array",
        id="json-array-file",
    ),
    pytest.param(b"{\n", "line 1: is not valid JSON", id="pretty-printed-file"),
    pytest.param(b'{"prompt": "caf\xe9"}', "line 1: is not valid UTF-8 (byte 15)", id="latin-1"),
    pytest.param(b"\xff\xfe{\x00}\x00", "line 1: the file is UTF-16 text; save it as UTF-8", id="utf-16"),
    pytest.param(b'{"prompt": "x", "completion": NaN}', "line 1: is not valid JSON (NaN is not", id="nan"),
    pytest.param(b'{"a": Infinity}', "line 1: is not valid JSON (Infinity is not", id="infinity"),
    pytest.param(b'{"a": -Infinity}', "line 1: is not valid JSON (-Infinity is not", id="minus-infinity"),
    pytest.param(
        b'{"a": ' + b"9" * 5000 + b"}", "line 1: is not valid JSON (Exceeds the limit", id="huge-int"
    ),
    pytest.param(
        b'{"prompt": "a", "prompt": "b", "completion": "c"}',
        "line 1: has the key 'prompt' more than once in one object",
        id="duplicated-key",
    ),
    pytest.param(
        b'{"messages": [{"role": "user", "content": "a\\udc00"}, {"role": "assistant", "content": "b"}]}',
        "line 1: messages[0].content has an unpaired surrogate escape",
        id="lone-surrogate",
    ),
    pytest.param(b'{"question": "hi"}', "line 1: must have 'messages'", id="unknown-format"),
    pytest.param(
        encoded({**chat(USER, ASSISTANT), "prompt": "x"}),
        "line 1: mixes chat key(s) 'messages' and prompt/completion key(s) 'prompt'",
        id="two-formats-in-one-example",
    ),
    pytest.param(encoded({"messages": []}), "line 1: messages must be a non-empty list", id="no-messages"),
    pytest.param(encoded({"messages": "hi"}), "line 1: messages must be a non-empty list", id="messages-str"),
    pytest.param(
        encoded(chat("hi", ASSISTANT)), "line 1: messages[0] must be an object", id="message-not-object"
    ),
    pytest.param(
        encoded(chat({"role": "robot", "content": "x"}, ASSISTANT)),
        "line 1: messages[0].role must be one of system, user, assistant, tool",
        id="bad-role",
    ),
    pytest.param(
        encoded(chat({"role": "User", "content": "x"}, ASSISTANT)),
        "line 1: messages[0].role must be one of system, user, assistant, tool",
        id="role-case",
    ),
    pytest.param(
        encoded(chat({"role": ["user"], "content": "x"}, ASSISTANT)),
        "line 1: messages[0].role must be one of",
        id="role-list",
    ),
    pytest.param(
        encoded(chat({"content": "x"}, ASSISTANT)), "line 1: messages[0].role is missing", id="no-role"
    ),
    pytest.param(
        encoded(chat({"role": "user"}, ASSISTANT)), "line 1: messages[0].content is missing", id="no-content"
    ),
    pytest.param(
        encoded(chat({"role": "user", "content": None}, ASSISTANT)),
        "line 1: messages[0].content is missing",
        id="null-content",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "content": None})),
        "line 1: messages[1].content is missing",
        id="null-answer-without-tool-calls",
    ),
    pytest.param(
        encoded(chat({"role": "user", "content": 5}, ASSISTANT)),
        "line 1: messages[0].content must be a string",
        id="content-number",
    ),
    pytest.param(
        encoded(chat({"role": "user", "content": []}, ASSISTANT)),
        "line 1: messages[0].content is an empty list",
        id="content-empty-list",
    ),
    pytest.param(
        encoded(
            chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}, ASSISTANT)
        ),
        "line 1: messages[0].content[0] must be a text part",
        id="image-part",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "mood": "happy"})),
        "line 1: messages[1] has unrecognized key 'mood'",
        id="unknown-key",
    ),
    pytest.param(
        encoded(chat({**USER, "name": 3}, ASSISTANT)), "line 1: messages[0].name must be a string", id="name"
    ),
    pytest.param(
        encoded(chat({**USER, "weight": 1}, ASSISTANT)),
        "line 1: messages[0].weight is only allowed on assistant messages",
        id="weight-on-user",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "weight": 2})),
        "line 1: messages[1].weight must be 0 or 1",
        id="weight-2",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "weight": True})),
        "line 1: messages[1].weight must be 0 or 1",
        id="weight-true",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "weight": 0})),
        "line 1: messages has no assistant message to learn from",
        id="all-weight-0",
    ),
    pytest.param(
        encoded(chat(USER, {**ASSISTANT, "tool_calls": {"id": "c1"}})),
        "line 1: messages[1].tool_calls must be a list",
        id="tool-calls-object",
    ),
    pytest.param(
        encoded(chat({**USER, "tool_calls": [CALL]}, ASSISTANT)),
        "line 1: messages[0].tool_calls is only allowed on assistant messages",
        id="tool-calls-on-user",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "tool_calls": [{"id": "c1"}]}, ASSISTANT)),
        "line 1: messages[1].tool_calls[0] must be an object with a 'function' object",
        id="tool-call-without-function",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "tool_calls": [{**CALL, "type": "code"}]}, ASSISTANT)),
        "line 1: messages[1].tool_calls[0].type must be 'function'",
        id="tool-call-type",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "assistant", "tool_calls": [{**CALL, "function": {"arguments": "{}"}}]})),
        "line 1: messages[1].tool_calls[0].function.name must be a non-empty string",
        id="tool-call-without-name",
    ),
    pytest.param(
        encoded(
            chat(
                USER,
                {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]},
            )
        ),
        "line 1: messages[1].tool_calls[0].function.arguments must be a string of JSON",
        id="tool-call-arguments-object",
    ),
    pytest.param(
        encoded(
            chat(
                USER,
                {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{x"}}]},
            )
        ),
        "line 1: messages[1].tool_calls[0].function.arguments is not valid JSON",
        id="tool-call-arguments-not-json",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "tool", "content": "42"}, ASSISTANT)),
        "line 1: messages[1].tool_call_id must be the id of the tool call it answers",
        id="tool-without-call-id",
    ),
    pytest.param(
        encoded(chat(USER, {"role": "tool", "tool_call_id": "c1", "content": "42"}, ASSISTANT)),
        "line 1: messages[1].tool_call_id 'c1' answers no earlier tool call",
        id="tool-answers-nothing",
    ),
    pytest.param(
        encoded(chat(USER, ASSISTANT, tools={"name": "f"})), "line 1: tools must be a list", id="tools"
    ),
    pytest.param(
        encoded(chat(USER, ASSISTANT, tools=[{"type": "function"}])),
        "line 1: tools[0] must be an object with a 'function' object that has a 'name'",
        id="tool-without-function",
    ),
    pytest.param(
        encoded(chat(USER, ASSISTANT, parallel_tool_calls="no")),
        "line 1: parallel_tool_calls must be true or false",
        id="parallel-tool-calls",
    ),
    pytest.param(encoded({"prompt": "x"}), "line 1: completion is missing", id="no-completion"),
    pytest.param(encoded({"completion": "x"}), "line 1: prompt is missing", id="no-prompt"),
    pytest.param(
        encoded({"prompt": 1, "completion": "x"}), "line 1: prompt must be a string", id="prompt-int"
    ),
    pytest.param(
        encoded({"prompt": "x", "completion": " "}), "line 1: completion is empty", id="empty-completion"
    ),
    pytest.param(
        encoded({"input": {"messages": [USER]}, "preferred_output": [ASSISTANT]}),
        "line 1: non_preferred_output is missing",
        id="half-preference",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": [USER]}),
        "line 1: input must be an object with 'messages'",
        id="preference-input-list",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": {"messages": [{"role": "robot", "content": "x"}]}}),
        "line 1: input.messages[0].role must be one of",
        id="preference-input-role",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": {"messages": [USER], "tools": "f"}}),
        "line 1: input.tools must be a list",
        id="preference-input-tools",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "input": {"messages": [USER, ASSISTANT]}}),
        "line 1: input.messages must end before the answer, not with an assistant message",
        id="preference-input-ends-with-an-answer",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "preferred_output": [USER]}),
        "line 1: preferred_output[0].role must be one of assistant",
        id="preference-user-output",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "preferred_output": [ASSISTANT, ASSISTANT]}),
        "line 1: preferred_output must be a list of one assistant message",
        id="preference-two-outputs",
    ),
    pytest.param(
        encoded({**PREFERENCE_EXAMPLE, "non_preferred_output": ASSISTANT}),
        "line 1: non_preferred_output must be a list of one assistant message",
        id="preference-output-object",
    ),
    pytest.param(encoded({"text": "hi"}), "line 1: label is missing", id="no-label"),
    pytest.param(encoded({"label": "spam"}), "line 1: text is missing", id="no-text"),
    pytest.param(encoded({"text": " ", "label": "a"}), "line 1: text is empty", id="empty-text"),
    pytest.param(encoded({"text": ["a"], "label": "a"}), "line 1: text must be a string", id="text-list"),
    pytest.param(encoded({"text": "a", "label": ""}), "line 1: label is empty", id="empty-label"),
    pytest.param(
        encoded({"text": "a", "label": 0.5}),
        "line 1: label must be a string, an integer or true/false",
        id="float",
    ),
    pytest.param(
        encoded({"text": "a", "label": None}),
        "line 1: label must be a string, an integer or true/false",
        id="null",
    ),
    pytest.param(
        encoded({"text": "a", "label": "x" * 300}), "line 1: label is 300 characters long", id="long"
    ),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "line 1: is nested too deeply", id="json-bomb"),
    pytest.param(
        b'{"messages": [], "tools": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "line 1: is nested too deeply",
        id="json-bomb-inside-example",
    ),
    pytest.param(
        b"\xef\xbb\xbf\xef\xbb\xbf{}",
        "line 1: starts with a byte-order mark (U+FEFF); only the file's first line may",
        id="two-boms",
    ),
]
