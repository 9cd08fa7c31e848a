"""Tool calls in a generated answer, in the form Hermes-style chat templates (Qwen 2.5, SmolLM3,
Hermes, and the many fine-tunes of them) teach: a JSON object with `name` and `arguments` between
`<tool_call>` tags, one pair of tags per call. Anything else stays text: a template that writes tool
calls another way, a call whose JSON does not parse, or one without a name.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_CALL = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON string, as OpenAI sends it
    id: str

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def parse_tool_calls(text: str) -> tuple[str | None, list[ToolCall]]:
    """The text outside the calls (None when there is none) and the calls; no calls: `(text, [])`.

    All calls or none: when any tagged span is not a call, the whole answer stays text."""
    spans = list(_CALL.finditer(text))
    if not spans:
        return text, []
    calls = []
    for span in spans:
        try:
            payload = json.loads(span.group(1).strip())
        except ValueError:
            return text, []
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            return text, []
        arguments = payload.get("arguments", payload.get("parameters", {}))
        if isinstance(arguments, str):  # already a JSON string (some models write it so)
            arguments_json = arguments
        else:
            arguments_json = json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCall(payload["name"], arguments_json, "call_" + uuid.uuid4().hex[:24]))
    outside = _CALL.sub("", text).strip()
    return outside or None, calls


def held_back(text: str) -> int:
    """Where streaming must stop for now in `text`: at a tool call's opening tag, or at a tail that
    may be the start of one. Returns the length of `text` that may be streamed as content."""
    at = text.find(OPEN)
    if at >= 0:
        return at
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return len(text) - size
    return len(text)
