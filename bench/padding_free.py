"""Padding-free against padded compute for the methods whose batches stay padded (DPO, classification).

    python bench/padding_free.py                 # demo model, 32 comparisons / 64 texts, 2 rounds
    python bench/padding_free.py --methods dpo --rounds 3 --model-dir PATH

The trainer feeds DPO and classification padded batches (TRL sums each row's log-probabilities, a
classifier reads each row's last token) and runs the decoder stack on their real tokens only
(worker/training/padding_free.py: `flatten_padded_batches`). This measures whether that is faster
than running the padded rows, on real variable-length data, with everything else the same: the same
LoRA r8 all-linear adapter on the same weights, the same batches in the same order, the same LM head
(worker/training/lm_head.py) and loss, one AdamW step a batch; arms alternate A B A B in this
process, each round on a fresh copy of the model.

- dpo: chatterbot-corpus conversations as comparisons: the conversation up to its last answer is the
  prompt, that answer is preferred, the next conversation's last answer is not. The reference is the
  model with its adapter off (as TRL's is for a new adapter), beta 0.1, the sigmoid loss.
- classification: chatterbot-corpus conversations as texts, labelled with their corpus category.

It prints each arm's real (non-padding) tokens/s per round, the ratio of the means, and each arm's
first and last loss (the same batches, so they should agree).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from bench.throughput import corpus  # noqa: E402

SEED = 0
CATEGORIES = ("ai", "coding", "emotion", "literature", "psychology", "trivia")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, help="a local model directory (default: the demo model)")
    parser.add_argument("--methods", default="dpo,classification")
    parser.add_argument("--comparisons", type=int, default=32, help="DPO comparisons (one epoch)")
    parser.add_argument("--texts", type=int, default=64, help="classification texts (one epoch)")
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.model_dir is None:
        from bench.recipes import demo_model_dir

        args.model_dir = demo_model_dir()
    for method in args.methods.split(","):
        batches = {"dpo": preference_batches, "classification": classification_batches}[method](args)
        real = sum(int(batch["attention_mask"].sum()) for batch in batches)
        cells = sum(batch["attention_mask"].numel() for batch in batches)
        print(
            f"{method}: {len(batches)} batches of {args.batch_size}, {real} real tokens in {cells} padded "
            f"positions ({100 * (1 - real / cells):.0f}% padding), max length {args.max_length}",
            flush=True,
        )
        results: dict[str, list[tuple[float, list[float]]]] = {"padded": [], "padding-free": []}
        for round_index in range(args.rounds):
            for arm in results:
                seconds, losses = train_epoch(method, args, batches, flattened=arm == "padding-free")
                results[arm].append((real / seconds, losses))
                print(
                    f"  round {round_index + 1} {arm:<12} {real / seconds:7.1f} tokens/s  "
                    f"first loss {losses[0]:.4f}  last loss {losses[-1]:.4f}  ({seconds:.1f}s)",
                    flush=True,
                )
        means = {arm: statistics.mean(rate for rate, _ in rounds) for arm, rounds in results.items()}
        print(f"  {method} padding-free / padded: {means['padding-free'] / means['padded']:.2f}x", flush=True)
    return 0


def train_epoch(
    method: str, args: argparse.Namespace, batches: list[dict[str, torch.Tensor]], flattened: bool
) -> tuple[float, list[float]]:
    model, step_loss = (dpo_model if method == "dpo" else classification_model)(args.model_dir, flattened)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    losses = []
    start = time.perf_counter()
    for batch in batches:
        loss = step_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return time.perf_counter() - start, losses


def adapted(model: Any, task: str, flattened: bool) -> Any:
    from peft import LoraConfig, get_peft_model

    from worker.training import padding_free

    torch.manual_seed(SEED)
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type=task)
    )
    if flattened:
        padding_free.flatten_padded_batches(model, padding_free.choose_layout(model, "lora"))
    return model.train()


def dpo_model(model_dir: Path, flattened: bool) -> tuple[Any, Callable[[dict], torch.Tensor]]:
    from transformers import AutoModelForCausalLM

    from worker.training import lm_head

    model = adapted(
        AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), "CAUSAL_LM", flattened
    )
    lm_head.install(model, ("log_probs",))

    def log_probs(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        return model(**inputs, labels=labels, fused_lm_head=True, use_cache=False).log_probs.sum(dim=1)

    def step_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad(), model.disable_adapter():
            reference = log_probs(batch)
        chosen, rejected = (log_probs(batch) - reference).chunk(2)
        return -torch.nn.functional.logsigmoid(0.1 * (chosen - rejected)).mean()

    return model, step_loss


def classification_model(model_dir: Path, flattened: bool) -> tuple[Any, Callable[[dict], torch.Tensor]]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(CATEGORIES), dtype=torch.float32
    )
    base.config.pad_token_id = AutoTokenizer.from_pretrained(model_dir).pad_token_id
    model = adapted(base, "SEQ_CLS", flattened)
    return model, lambda batch: model(**batch).loss


def preference_batches(args: argparse.Namespace) -> list[dict[str, torch.Tensor]]:
    from transformers import AutoTokenizer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    tokenizer: Any = AutoTokenizer.from_pretrained(args.model_dir)
    chats = [turns[: len(turns) - len(turns) % 2] for _, turns in corpus()]
    random.Random(SEED).shuffle(chats)
    chats = chats[: args.comparisons + 1]

    def answer(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    comparisons = []
    for chat, other in itertools.pairwise(chats):
        prompt = [{"role": ("user", "assistant")[i % 2], "content": turn} for i, turn in enumerate(chat[:-1])]
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)[
            "input_ids"
        ]
        comparisons.append(
            {"prompt_ids": prompt_ids, "chosen_ids": answer(chat[-1]), "rejected_ids": answer(other[-1])}
        )
    collate = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=args.max_length)
    size = args.batch_size
    return [collate(comparisons[i : i + size]) for i in range(0, len(comparisons), size)]


def classification_batches(args: argparse.Namespace) -> list[dict[str, torch.Tensor]]:
    from transformers import AutoTokenizer, DataCollatorWithPadding

    tokenizer: Any = AutoTokenizer.from_pretrained(args.model_dir)
    texts = [
        (CATEGORIES.index(category), "\n".join(turns))
        for category, turns in corpus()
        if category in CATEGORIES
    ]
    random.Random(SEED).shuffle(texts)
    rows = [
        {**tokenizer(text, truncation=True, max_length=args.max_length), "labels": label}
        for label, text in texts[: args.texts]
    ]
    collate = DataCollatorWithPadding(tokenizer)
    size = args.batch_size
    return [collate(rows[i : i + size]) for i in range(0, len(rows), size)]


if __name__ == "__main__":
    raise SystemExit(main())
