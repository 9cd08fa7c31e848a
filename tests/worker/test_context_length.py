"""Token counts of training examples for a real (tiny, offline) base model, and its context length."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from api.files.validation import ExampleRejected, check_lines
from tests.support.tiny_model import toy_chat_examples
from worker.context_length import example_token_counter
from worker.training.data import normalize_example, tokenize_example

USER = {"role": "user", "content": "What colour is a lime?"}
ASSISTANT = {"role": "assistant", "content": "green"}
CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"fruit": "lime"}'}}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
# A template in the style of Llama 2's and Mistral's: it refuses roles that don't alternate.
STRICT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}<|im_start|>{{ message['content'] }}<|im_end|>{% endfor %}"
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)


def trainer_length(tokenizer: Any, example: dict[str, Any]) -> int:
    """How many tokens the trainer feeds the model for this example, before truncation."""
    return len(tokenize_example(tokenizer, example).input_ids)


def model_copy(tiny_model_dir: Path, destination: Path, **config_changes: Any) -> Path:
    shutil.copytree(tiny_model_dir, destination)
    config = json.loads((destination / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (destination / "config.json").write_text(json.dumps(config))
    return destination


class TestCount:
    @pytest.mark.parametrize(
        "example",
        [
            pytest.param(toy_chat_examples(1)[0], id="toy"),
            pytest.param({"messages": [USER, {**ASSISTANT, "weight": 0}, USER, ASSISTANT]}, id="weights"),
            pytest.param(
                {
                    "messages": [
                        USER,
                        {"role": "assistant", "content": None, "tool_calls": [CALL]},
                        {"role": "tool", "tool_call_id": "c1", "content": "green"},
                        ASSISTANT,
                    ],
                    "tools": TOOLS,
                },
                id="tools",
            ),
            pytest.param(
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "text", "text": "Lime? 🍋 ليمون 青柠"}]},
                        ASSISTANT,
                    ]
                },
                id="text-parts-unicode",
            ),
        ],
    )
    def test_a_chat_example_counts_what_the_trainer_tokenizes(
        self, tiny_model_dir: Path, tokenizer: Any, example: dict[str, Any]
    ) -> None:
        count, _ = example_token_counter(tiny_model_dir)
        assert count(example) == trainer_length(tokenizer, example)

    def test_a_prompt_completion_example_counts_as_the_trainer_s_two_turns(
        self, tiny_model_dir: Path, tokenizer: Any
    ) -> None:
        count, _ = example_token_counter(tiny_model_dir)
        example = {"prompt": "What colour is a lime?", "completion": "green"}
        assert count(example) == trainer_length(tokenizer, normalize_example(example))
        assert count(example) == count({"messages": [USER, ASSISTANT]})

    def test_a_preference_example_counts_its_longer_side(self, tiny_model_dir: Path) -> None:
        count, _ = example_token_counter(tiny_model_dir)
        long_answer = {"role": "assistant", "content": "a lime is green, a lemon is yellow"}
        example = {
            "input": {"messages": [USER], "tools": TOOLS},
            "preferred_output": [ASSISTANT],
            "non_preferred_output": [long_answer],
        }
        longer = count({"messages": [USER, long_answer], "tools": TOOLS})
        assert longer > count({"messages": [USER, ASSISTANT], "tools": TOOLS})
        assert count(example) == longer
        swapped = {**example, "preferred_output": [long_answer], "non_preferred_output": [ASSISTANT]}
        assert count(swapped) == longer

    def test_a_classification_example_counts_its_text(self, tiny_model_dir: Path, tokenizer: Any) -> None:
        count, _ = example_token_counter(tiny_model_dir)
        text = "The lime is green."
        assert count({"text": text, "label": "fruit"}) == len(tokenizer(text)["input_ids"]) > 0

    def test_a_long_example_is_counted_whole(self, tiny_model_dir: Path) -> None:
        count, context_length = example_token_counter(tiny_model_dir)
        example = {"messages": [USER, {"role": "assistant", "content": "green " * 5_000}]}
        assert count(example) > 5_000 > context_length

    def test_an_example_the_chat_template_refuses_is_rejected(
        self, tiny_model_dir: Path, tmp_path: Path
    ) -> None:
        tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)
        tokenizer.chat_template = STRICT_TEMPLATE
        strict = tmp_path / "strict"
        tokenizer.save_pretrained(strict)
        shutil.copy(tiny_model_dir / "config.json", strict / "config.json")
        count, _ = example_token_counter(strict)
        assert count({"messages": [USER, ASSISTANT]}) > 0
        with pytest.raises(
            ExampleRejected, match="the model's chat template rejected this example: Conversation"
        ):
            count({"messages": [USER, USER, ASSISTANT]})


def test_a_role_order_the_chat_template_refuses_is_a_problem_of_its_line(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The formats allow a conversation to start with the assistant; a base model whose template refuses
    # that (Llama 2's, Mistral's) says so in its own words, at job validation, naming the line.
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)
    tokenizer.chat_template = STRICT_TEMPLATE
    strict = tmp_path / "strict"
    tokenizer.save_pretrained(strict)
    shutil.copy(tiny_model_dir / "config.json", strict / "config.json")
    count, _ = example_token_counter(strict)
    greeting_first = {"messages": [{"role": "assistant", "content": "Hello!"}, USER, ASSISTANT]}

    report = check_lines(
        [
            json.dumps(example).encode() + b"\n"
            for example in ({"messages": [USER, ASSISTANT]}, greeting_first)
        ],
        count_tokens=count,
    )

    assert report.n_examples == 1
    assert report.problems == [
        "line 2: the model's chat template rejected this example: "
        "Conversation roles must alternate user/assistant/user/assistant/..."
    ]


class TestContextLength:
    def test_it_is_the_model_s_positions(self, tiny_model_dir: Path) -> None:
        _, context_length = example_token_counter(tiny_model_dir)
        assert (
            context_length
            == json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
        )

    def test_gpt2_style_configs_name_it_n_positions(self, tiny_model_dir: Path, tmp_path: Path) -> None:
        model = model_copy(tiny_model_dir, tmp_path / "m", max_position_embeddings=None, n_positions=1024)
        assert example_token_counter(model)[1] == 1024

    def test_multimodal_configs_keep_it_in_text_config(self, tiny_model_dir: Path, tmp_path: Path) -> None:
        model = model_copy(
            tiny_model_dir,
            tmp_path / "m",
            max_position_embeddings=None,
            text_config={"max_position_embeddings": 4096},
        )
        assert example_token_counter(model)[1] == 4096

    def test_else_the_tokenizer_says(self, tiny_model_dir: Path, tmp_path: Path) -> None:
        model = model_copy(tiny_model_dir, tmp_path / "m", max_position_embeddings=None)
        assert example_token_counter(model)[1] == 512  # the tiny tokenizer's model_max_length

    def test_a_model_that_does_not_say_is_an_error(self, tiny_model_dir: Path, tmp_path: Path) -> None:
        model = model_copy(tiny_model_dir, tmp_path / "m", max_position_embeddings=None)
        tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
        tokenizer_config.pop("model_max_length", None)
        (model / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
        with pytest.raises(ValueError, match="says how long the model's context is"):
            example_token_counter(model)


def test_check_lines_warns_about_the_examples_longer_than_the_context(tiny_model_dir: Path) -> None:
    count, context_length = example_token_counter(tiny_model_dir)
    examples = toy_chat_examples(12)
    examples[6]["messages"][-1]["content"] = "green " * 1_000
    report = check_lines(
        [json.dumps(example).encode() + b"\n" for example in examples],
        count_tokens=count,
        max_tokens=context_length,
    )
    assert report.ok and report.n_examples == 12
    assert report.n_long_examples == 1
    n_tokens = count(examples[6])
    assert report.warnings == [
        f"line 7: example is {n_tokens} tokens, longer than the model's context of 512 tokens "
        "(training truncates it)"
    ]
    assert report.max_example_tokens == n_tokens
    assert report.n_tokens == sum(count(example) for example in examples)
