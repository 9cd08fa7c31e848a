"""Dataset reading and assistant-only loss masks, checked on a real fast tokenizer without a model."""

from __future__ import annotations

import pytest

from tests.support.tiny_model import CHATML_TEMPLATE, build_tiny_tokenizer, toy_chat_examples, write_jsonl
from worker.training.data import (
    IGNORE_INDEX,
    ChatTemplateError,
    DatasetError,
    load_examples,
    normalize_example,
    read_dataset,
    tokenization_warnings,
    tokenize_example,
    tokenize_examples,
)

END = "<|im_end|>\n"  # what the ChatML template writes after each message's content


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def trained_text(tokenizer, tokenized) -> str:
    return tokenizer.decode([label for label in tokenized.labels if label != IGNORE_INDEX])


def two_turns(first_weight: int | None = None) -> dict:
    first_answer = {"role": "assistant", "content": "green"}
    if first_weight is not None:
        first_answer["weight"] = first_weight
    return {
        "messages": [
            {"role": "system", "content": "You are a fruit expert."},
            {"role": "user", "content": "What colour is a lime?"},
            first_answer,
            {"role": "user", "content": "What colour is a plum?"},
            {"role": "assistant", "content": "purple"},
        ]
    }


class TestTokenizeExample:
    def test_only_assistant_contents_and_their_end_token_are_trained(self, tokenizer):
        tokenized = tokenize_example(tokenizer, two_turns())

        assert trained_text(tokenizer, tokenized) == "green" + END + "purple" + END
        assert len(tokenized.input_ids) == len(tokenized.labels)
        for token_id, label in zip(tokenized.input_ids, tokenized.labels, strict=True):
            assert label in (IGNORE_INDEX, token_id)
        # The tokens are those of the rendered conversation, with nothing added around it.
        rendered = tokenizer.apply_chat_template(two_turns()["messages"], tokenize=False)
        assert tokenizer.decode(tokenized.input_ids) == rendered

    def test_assistant_message_with_weight_zero_is_not_trained(self, tokenizer):
        tokenized = tokenize_example(tokenizer, two_turns(first_weight=0))

        assert trained_text(tokenizer, tokenized) == "purple" + END
        assert "green" in tokenizer.decode(tokenized.input_ids)  # still there as context

    def test_prompt_completion_trains_the_completion_only(self, tokenizer):
        tokenized = tokenize_example(tokenizer, {"prompt": "What colour is a lime?", "completion": "green"})

        assert trained_text(tokenizer, tokenized) == "green" + END
        assert tokenizer.decode(tokenized.input_ids).startswith("<|im_start|>user\nWhat colour is a lime?")

    def test_a_conversation_the_assistant_starts_trains_its_first_message(self, tokenizer):
        # A support bot that greets first: nothing prompts the greeting, and it is learned all the same.
        example = {
            "messages": [
                {"role": "assistant", "content": "Hello! Ask me about fruit."},
                *two_turns()["messages"][1:],
            ]
        }
        tokenized = tokenize_example(tokenizer, example)

        assert (
            trained_text(tokenizer, tokenized)
            == "Hello! Ask me about fruit." + END + "green" + END + "purple" + END
        )
        assert tokenizer.decode(tokenized.input_ids) == tokenizer.apply_chat_template(
            example["messages"], tokenize=False
        )

    def test_a_first_assistant_message_under_a_template_that_refuses_no_messages_trains_its_whole_turn(self):
        # A template that can't render an empty conversation gives no prompt before the first message:
        # its whole turn, the role header included, is trained.
        tokenizer = build_tiny_tokenizer()
        tokenizer.chat_template = (
            "{% if not messages %}{{ raise_exception('no messages') }}{% endif %}" + CHATML_TEMPLATE
        )
        example = {
            "messages": [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Hi"}]
        }

        tokenized = tokenize_example(tokenizer, example)

        assert trained_text(tokenizer, tokenized) == "<|im_start|>assistant\nHello!" + END

    def test_truncation_keeps_the_start(self, tokenizer):
        full = tokenize_example(tokenizer, two_turns())
        tokenized = tokenize_example(tokenizer, two_turns(), max_seq_length=10)

        assert tokenized.truncated
        assert tokenized.input_ids == full.input_ids[:10]
        assert tokenized.labels == full.labels[:10]

    def test_template_that_rerenders_earlier_turns_is_refused_clearly(self, tokenizer):
        # Like templates that strip past reasoning: an answer renders differently once it is not the last.
        tokenizer = build_tiny_tokenizer()
        tokenizer.chat_template = CHATML_TEMPLATE.replace(
            "{{ message['content'] }}",
            "{% if message['role'] == 'assistant' and not loop.last %}(earlier){% else %}"
            "{{ message['content'] }}{% endif %}",
        )

        with pytest.raises(ChatTemplateError, match="not prefix-stable"):
            tokenize_example(tokenizer, two_turns())

    def test_tokenizer_without_chat_template_is_refused(self):
        tokenizer = build_tiny_tokenizer()
        tokenizer.chat_template = None

        with pytest.raises(ChatTemplateError, match="no chat template"):
            tokenize_example(tokenizer, two_turns())


class TestTokenizeExamples:
    def test_truncated_examples_are_counted_and_untrainable_ones_dropped(self, tokenizer):
        short = {"prompt": "Hi", "completion": "red"}
        examples = [dict(two_turns(), line=1), dict(short, line=2), dict(two_turns(), line=3)]
        # Long enough for the short example, too short to reach an answer of the two-turn ones.
        max_seq_length = len(tokenize_example(tokenizer, short).input_ids)

        dataset = tokenize_examples(tokenizer, examples, max_seq_length)

        assert dataset.n_read == 3
        assert dataset.truncated_lines == [1, 3]
        assert dataset.dropped_lines == [1, 3]
        assert len(dataset.examples) == 1
        warnings = tokenization_warnings(dataset, "training", max_seq_length)
        assert warnings[0].startswith(f"2 training examples longer than max_seq_length {max_seq_length}")
        assert "lines 1, 3" in warnings[1]

    def test_file_with_nothing_left_to_train_is_an_error(self, tokenizer, tmp_path):
        path = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(2))

        with pytest.raises(DatasetError, match="no example has an assistant token") as raised:
            read_dataset(tokenizer, path, max_seq_length=5, purpose="validation")
        assert raised.value.purpose == "validation"

    def test_template_exception_names_the_line(self, tokenizer):
        strict = build_tiny_tokenizer()
        strict.chat_template = "{{ raise_exception('roles must alternate') }}"

        with pytest.raises(DatasetError, match="line 7: the chat template rejected this example: roles"):
            tokenize_examples(strict, [dict(two_turns(), line=7)])


class TestLoadExamples:
    def test_bom_crlf_and_blank_lines_are_accepted(self, tmp_path):
        path = tmp_path / "train.jsonl"
        lines = [
            '{"prompt": "a", "completion": "b"}',
            "",
            '{"prompt": "c", "completion": "d"}',  # one format per file, as the API requires
            "   ",
        ]
        path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")

        examples = load_examples(path)

        assert [example["line"] for example in examples] == [1, 3]
        assert examples[0]["messages"] == [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
        ]
        assert examples[1]["messages"][1] == {"role": "assistant", "content": "d"}

    def test_invalid_json_names_its_line(self, tmp_path):
        path = tmp_path / "train.jsonl"
        path.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": \n')

        with pytest.raises(DatasetError, match=r"^line 2: is not valid JSON") as raised:
            load_examples(path)
        assert raised.value.line == 2

    def test_bytes_that_are_not_utf8_name_their_line(self, tmp_path):
        path = tmp_path / "train.jsonl"
        path.write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9", "completion": "b"}\n')

        with pytest.raises(DatasetError, match="line 2: is not valid UTF-8"):
            load_examples(path)

    @pytest.mark.parametrize(
        ("line", "problem"),
        [
            (b'{"prompt": "a", "completion": NaN}', "is not valid JSON (NaN is not a JSON value"),
            (b'{"prompt": "a", "prompt": "b", "completion": "c"}', "has the key 'prompt' more than once"),
            (b'{"prompt": "a\\ud800", "completion": "c"}', "prompt has an unpaired surrogate escape"),
            (b'\xef\xbb\xbf{"prompt": "a", "completion": "b"}', "starts with a byte-order mark"),
        ],
    )
    def test_lines_the_api_refuses_are_refused_in_its_words(self, tmp_path, line, problem):
        # Python's json would read the first three; the API refuses them, and so must the trainer.
        path = tmp_path / "train.jsonl"
        path.write_bytes(b'{"prompt": "a", "completion": "b"}\n' + line + b"\n")

        with pytest.raises(DatasetError) as raised:
            load_examples(path)
        assert str(raised.value).startswith(f"line 2: {problem}")

    def test_a_conversation_may_start_with_the_assistant(self, tmp_path):
        greeting = {"role": "assistant", "content": "Hello!"}
        path = write_jsonl(
            tmp_path / "train.jsonl",
            [{"messages": [greeting]}, {"messages": [greeting, *two_turns()["messages"][1:]]}],
        )

        examples = load_examples(path)

        assert [example["messages"][0] for example in examples] == [greeting, greeting]

    def test_empty_file_is_an_error(self, tmp_path):
        path = tmp_path / "train.jsonl"
        path.write_text("\n\n")

        with pytest.raises(DatasetError, match="no examples"):
            load_examples(path)


class TestNormalizeExample:
    @pytest.mark.parametrize(
        ("raw", "problem"),
        [
            ([1, 2], "must be a JSON object"),
            ({"text": "hello"}, "needs a 'messages' list"),
            ({"messages": []}, "non-empty list"),
            ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message to learn from"),
            ({"messages": [{"role": "robot", "content": "hi"}]}, "role must be one of"),
            ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}, "content is missing"),
            (
                {
                    "messages": [
                        {"role": "user", "content": "q", "weight": 0},
                        {"role": "assistant", "content": "a"},
                    ]
                },
                "only allowed on assistant",
            ),
            ({"prompt": 1, "completion": "b"}, "prompt must be a string"),
        ],
    )
    def test_invalid_examples_say_what_is_wrong(self, raw, problem):
        with pytest.raises(DatasetError, match=problem):
            normalize_example(raw)

    def test_text_content_parts_are_joined(self):
        example = normalize_example(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    },
                    {"role": "assistant", "content": "c"},
                ]
            }
        )
        assert example["messages"][0]["content"] == "ab"

    def test_tool_call_arguments_become_objects_for_templates(self):
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"fruit": "lime"}'},
        }
        example = normalize_example(
            {
                "messages": [
                    {"role": "user", "content": "colour of a lime?"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "green"},
                    {"role": "assistant", "content": "green"},
                ],
                "tools": [{"type": "function", "function": {"name": "lookup"}}],
            }
        )
        assert example["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"fruit": "lime"}
        assert example["tools"][0]["function"]["name"] == "lookup"
