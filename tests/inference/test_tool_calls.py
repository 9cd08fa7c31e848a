"""Tool calls read from a generated answer (Hermes-style `<tool_call>` JSON), and the OpenAI shapes
they are answered in, whole and streamed."""

from __future__ import annotations

import json
from typing import Any

from worker.inference.responses import Answer
from worker.inference.tool_calls import held_back, parse_tool_calls

WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TIME = '<tool_call>{"name": "get_time", "arguments": {"zone": "CET"}}</tool_call>'


class TestParse:
    def test_a_valid_call(self) -> None:
        outside, calls = parse_tool_calls(WEATHER)
        assert outside is None
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
        assert calls[0].id.startswith("call_")

    def test_two_calls_and_the_text_outside_them(self) -> None:
        outside, calls = parse_tool_calls(f"Let me look.\n{WEATHER}\n{TIME}")
        assert outside == "Let me look."
        assert [c.name for c in calls] == ["get_weather", "get_time"]
        assert len({c.id for c in calls}) == 2

    def test_malformed_json_stays_text(self) -> None:
        text = '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>'
        assert parse_tool_calls(text) == (text, [])

    def test_a_call_without_a_name_stays_text(self) -> None:
        text = '<tool_call>{"arguments": {}}</tool_call>'
        assert parse_tool_calls(text) == (text, [])

    def test_plain_text_and_an_unclosed_tag_stay_text(self) -> None:
        assert parse_tool_calls("It is sunny.") == ("It is sunny.", [])
        assert parse_tool_calls('<tool_call>{"name": "x"') == ('<tool_call>{"name": "x"', [])

    def test_streaming_holds_back_at_a_tag_or_a_tail_that_may_become_one(self) -> None:
        assert held_back("Hello") == 5
        assert held_back("Hello <tool") == 6
        assert held_back("Hello <tool_call>{") == 6
        assert held_back("a < b") == 5


def answered(text: str, tools: bool, finish_reason: str = "stop") -> dict[str, Any]:
    answer = Answer("chat", "m", tools=tools)
    answer.add(0, text, [])
    answer.end(0, finish_reason, 5)
    return answer.whole(False)["choices"][0]


class TestWholeAnswer:
    def test_a_tool_call_is_answered_as_tool_calls(self) -> None:
        choice = answered(WEATHER, tools=True)
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["type"] == "function" and call["id"].startswith("call_")
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    def test_without_tools_or_with_tool_choice_none_the_text_stays_text(self) -> None:
        choice = answered(WEATHER, tools=False)
        assert choice["message"]["content"] == WEATHER and "tool_calls" not in choice["message"]
        assert choice["finish_reason"] == "stop"

    def test_malformed_calls_stay_text(self) -> None:
        text = "<tool_call>{oops}</tool_call>"
        choice = answered(text, tools=True)
        assert choice["message"]["content"] == text and choice["finish_reason"] == "stop"


def streamed(pieces: list[str], tools: bool) -> list[dict[str, Any]]:
    answer = Answer("chat", "m", tools=tools)
    chunks = []
    for piece in pieces:
        answer.add(0, piece, [])
        chunk = answer.stream_piece(0, [], False)
        if chunk is not None:
            chunks.append(chunk)
    answer.end(0, "stop", len(pieces))
    chunks += answer.end_chunks(0)
    return [json.loads(chunk[len("data: ") :]) for chunk in chunks]


class TestStream:
    def test_tool_calls_come_as_deltas_at_the_end_with_finish_reason_tool_calls(self) -> None:
        pieces = ["Sure.", " <tool", "_call>", WEATHER[len("<tool_call>") :], TIME]
        chunks = streamed(pieces, tools=True)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == "Sure. "
        calls = [
            c["choices"][0]["delta"]["tool_calls"][0]
            for c in chunks
            if "tool_calls" in c["choices"][0]["delta"]
        ]
        assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "get_weather"), (1, "get_time")]
        assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
        assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    def test_a_held_back_tag_that_is_no_call_is_streamed_as_text_at_the_end(self) -> None:
        chunks = streamed(["a <tool", "_call> nope"], tools=True)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == "a <tool_call> nope"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    def test_without_tools_everything_streams_as_it_comes(self) -> None:
        chunks = streamed(["a <tool", "_call>"], tools=False)
        assert [c["choices"][0]["delta"].get("content") for c in chunks[:-1]] == ["a <tool", "_call>"]
