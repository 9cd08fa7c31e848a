"""A tiny chat model and a learnable toy dataset, built offline in about a second.

The trainer tests and the end-to-end tests need a real base model directory (config, safetensors
weights, fast tokenizer with a chat template) without touching the Hugging Face hub, and a dataset
whose loss visibly falls after a few epochs on that model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<pad>"]

SYSTEM_PROMPT = "You are a fruit expert. Answer with one word."
# One fixed answer per fruit: the model only has to learn a lookup, which a 2-layer model does in a
# few epochs, so a falling loss proves that the trainer really trains.
FRUIT_COLOURS = {
    "apple": "red",
    "banana": "yellow",
    "lime": "green",
    "plum": "purple",
    "orange": "orange",
    "blueberry": "blue",
    "coconut": "brown",
    "lychee": "pink",
}


def toy_chat_examples(n: int) -> list[dict[str, Any]]:
    """`n` chat examples in OpenAI's fine-tuning format, cycling through the fruit table."""
    fruits = list(FRUIT_COLOURS)
    examples = []
    for index in range(n):
        fruit = fruits[index % len(fruits)]
        examples.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"What colour is a {fruit}?"},
                    {"role": "assistant", "content": FRUIT_COLOURS[fruit]},
                ]
            }
        )
    return examples


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    """`examples` one JSON object a line, as a user would upload them."""
    return "".join(json.dumps(example) + "\n" for example in examples).encode()


def write_jsonl(path: Path, examples: list[dict[str, Any]]) -> Path:
    path.write_bytes(jsonl(examples))
    return path


def _tokenizer_corpus() -> list[str]:
    # The toy conversations plus a little general text, so that the BPE learns whole words for the toy
    # data (short sequences, fast tests) and still covers anything else byte by byte.
    corpus = [SYSTEM_PROMPT, "system", "user", "assistant", "tool", "What colour is a"]
    for fruit, colour in FRUIT_COLOURS.items():
        corpus += [f"What colour is a {fruit}?", colour, f"The {fruit} is {colour}."]
    corpus += [
        "The quick brown fox jumps over the lazy dog.",
        "Hello, how are you today? I am fine, thank you.",
        "Please answer the question with a short sentence.",
    ]
    return corpus


def build_tiny_tokenizer() -> Any:
    """A byte-level BPE fast tokenizer with ChatML special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=512,
    )


def build_tiny_chat_model(
    directory: Path,
    with_biases: bool = False,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_hidden_layers: int = 2,
) -> Path:
    """Save a random 2-layer Llama and its tokenizer under `directory`; return the directory.

    `with_biases` gives every attention and MLP projection a bias, as Qwen and GPT-2 style models have
    and Llama has not: what BitFit needs to train. The sizes make a heavier model where a test needs
    weights that take time to write, with the same tokenizer and toy data.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<pad>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=False,
        # Larger than the default 0.02: with a frozen, tiny lm_head, logits can't move far enough for the
        # loss to fall visibly within a few LoRA steps.
        initializer_range=0.1,
        attention_bias=with_biases,
        mlp_bias=with_biases,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def toy_preference_examples(n: int) -> list[dict[str, Any]]:
    """`n` comparisons in OpenAI's preference format: the one-word colour preferred over chatter.

    The rejected answer is the same everywhere, so even a tiny random model learns the preference in a
    few steps (a wrong colour, preferred elsewhere, would need the model to know the table first).
    """
    fruits = list(FRUIT_COLOURS)
    wrong = "Hello, how are you today?"
    examples = []
    for index in range(n):
        fruit = fruits[index % len(fruits)]
        examples.append(
            {
                "input": {
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": f"What colour is a {fruit}?"},
                    ]
                },
                "preferred_output": [{"role": "assistant", "content": FRUIT_COLOURS[fruit]}],
                "non_preferred_output": [{"role": "assistant", "content": wrong}],
            }
        )
    return examples


def toy_reinforcement_prompts(n: int, field: str = "word") -> list[dict[str, Any]]:
    """`n` lines in OpenAI's reinforcement format: a colour question, and the word a grader wants
    ("red", whatever the fruit: a target the tiny random model rarely hits) under `field`."""
    fruits = list(FRUIT_COLOURS)
    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"What colour is a {fruits[index % len(fruits)]}?"},
            ],
            field: "red",
        }
        for index in range(n)
    ]


def toy_classification_examples(n: int) -> list[dict[str, Any]]:
    """`n` lines of {"text", "label"}: a fruit labelled with its colour.

    The fruit comes first: an encoder classifies from its first position, which in a random 2-layer
    encoder holds little of the later tokens; a decoder reads the last position, which sees them all.
    """
    fruits = [list(FRUIT_COLOURS)[index % len(FRUIT_COLOURS)] for index in range(n)]
    return [
        {"text": f"{fruit} is a fruit. What colour is it?", "label": FRUIT_COLOURS[fruit]} for fruit in fruits
    ]


def build_tiny_encoder_model(directory: Path) -> Path:
    """Save a random 2-layer BERT encoder (no head) and the tiny tokenizer: a classification base."""
    import torch
    from transformers import BertConfig, BertModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.convert_tokens_to_ids("<pad>"),
        initializer_range=0.1,
        # No dropout: a 2-layer random encoder has no redundancy to regularise, and with it the toy
        # labels take many more steps to learn.
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
