"""Tokens per epoch of a training file, estimated from its first lines: bounded work in a request.

The first SAMPLE_BYTES are read (never the whole file); each example's text is counted with the base
model's tokenizer where the `tokenizers` package is installed (workers, development), else at
BYTES_PER_TOKEN (the API image, which has no tokenizer); each example is cut at max_seq_length as the
trainer cuts it, and the sample's rate is scaled to the file's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE_BYTES = 4 * 2**20
BYTES_PER_TOKEN = 4
# Role markers and separators a chat template adds around each message.
TOKENS_PER_STRING = 4


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    n_examples: int
    counted_by: str
    """"tokenizer" or "bytes" (an estimate of BYTES_PER_TOKEN bytes a token)."""


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("weight", "role", "type"):
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _counter(model_dir: Path) -> tuple[Callable[[str], int], str]:
    tokenizer_file = model_dir / "tokenizer.json"
    if tokenizer_file.is_file():
        try:
            from tokenizers import Tokenizer
        except ImportError:  # the API image: no tokenizer, so bytes
            pass
        else:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            return (lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)), "tokenizer"
    return (lambda text: -(-len(text.encode()) // BYTES_PER_TOKEN)), "bytes"


def count_tokens(data_file: Path, model_dir: Path, max_seq_length: int) -> TokenCount:
    count, counted_by = _counter(model_dir)
    size = data_file.stat().st_size
    sampled_bytes = tokens = examples = 0
    with data_file.open("rb") as stream:
        for raw in stream:
            sampled_bytes += len(raw)
            try:
                example = json.loads(raw)
            except ValueError:
                continue
            strings = list(_strings(example))
            tokens += min(max_seq_length, sum(count(s) + TOKENS_PER_STRING for s in strings))
            examples += 1
            if sampled_bytes >= SAMPLE_BYTES:
                break
    if sampled_bytes == 0 or examples == 0:
        return TokenCount(0, 0, counted_by)
    scale = size / sampled_bytes
    return TokenCount(round(tokens * scale), round(examples * scale), counted_by)
