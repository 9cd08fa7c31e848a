"""Prompts rendered by the model's own chat template: tools and earlier tool calls reach it in the
shapes templates read, and a template that cannot show tools is a 400 rather than silence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TINY_MODEL
from worker.inference.prompts import PromptError, chat_prompt_ids

# A Hermes-style template (the shape Qwen2.5's and many tool-tuned models' templates have): tools
# listed as JSON in the system turn, an assistant's calls as <tool_call> JSON, tool results as turns.
HERMES_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools:\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}"
    "<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    '{% for call in message.get(\'tool_calls\', []) %}<tool_call>{"name": "{{ call.function.name }}", '
    '"arguments": {{ call.function.arguments | tojson }}}</tool_call>{% endfor %}<|im_end|>\n{% endfor %}'
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def rendered(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict] | None) -> str:
    return tokenizer.decode(chat_prompt_ids(tokenizer, messages, tools))


def test_tools_and_earlier_calls_are_rendered_by_a_template_that_knows_them(tokenizer: Any) -> None:
    tokenizer.chat_template = HERMES_TEMPLATE
    text = rendered(tokenizer, CONVERSATION, [WEATHER_TOOL])
    assert '"name": "get_weather"' in text and '"description": "The weather in a city"' in text
    # The call's arguments arrive as an object, not as a JSON string quoted a second time.
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in text
    assert text.endswith("<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n")


def test_a_template_that_ignores_tools_is_refused_naming_the_field(
    tokenizer: Any, tiny_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(tiny_model_dir)  # the tiny model's ChatML has no tools
    with pytest.raises(PromptError) as refused:
        chat_prompt_ids(plain, [{"role": "user", "content": "hi"}], [WEATHER_TOOL])
    assert refused.value.param == "tools" and "does not render tools" in refused.value.message
    # Without tools the same template serves as ever.
    assert chat_prompt_ids(plain, [{"role": "user", "content": "hi"}], None)


def test_the_backend_answers_a_400_that_names_tools(server: TestClient) -> None:
    response = server.post(
        "/v1/chat/completions",
        json={"model": TINY_MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL]},
    )
    assert response.status_code == 400, response.text
    error = json.loads(response.text)["error"]
    assert error["param"] == "tools" and error["code"] == "tools_not_supported"
