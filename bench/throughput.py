"""Tunery's trainer against the script a user would write, on real multi-turn chat data.

    python bench/throughput.py                      # demo model, 32 conversations, 2 rounds
    python bench/throughput.py --conversations 64 --rounds 3 --model-dir PATH

Two arms, each in its own process, alternating A B A B so that a machine whose load drifts
weighs on both:
- tunery: `python -m worker.training spec.json` with the defaults a user gets (a LoRA recipe with
  nothing set but max_seq_length, the supervised method's base learning rate).
- plain: a Hugging Face `Trainer` + `peft` LoRA script of the kind users write: the chat template,
  truncation at the same max length, loss on the assistant's tokens, a pad-to-longest collator; the
  same model, LoRA rank, alpha, dropout and targets, batch size, learning rate, seed and one epoch.

The data: the multi-turn English conversations of the chatterbot-corpus package (a real dialog
corpus on PyPI, a dev dependency), alternating user and assistant, so lengths vary as in real chat.
Throughput is the non-padding tokens of the epoch over the time from the trainer's start to its
last step, both read the same way from each child's progress lines as they arrive. It prints each
arm's tokens/s per round, the ratio of the means, and each arm's final and mean loss (the same
batches in the same order in both arms, so they should agree; a ratio bought with a worse loss
counts for nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

ARMS = ("tunery", "plain")
SEED = 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, help="a local model directory (default: the demo model)")
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1, help="more epochs give a GPU enough steps to time")
    parser.add_argument("--arms", default=",".join(ARMS), help="the arms to run (comma-separated)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's bf16 peak (default: datasheet)")
    parser.add_argument("--plain-child", nargs=2, metavar=("MODEL_DIR", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    arms = tuple(arm for arm in args.arms.split(",") if arm)
    if not arms or set(arms) - set(ARMS):
        parser.error(f"--arms takes some of {', '.join(ARMS)}")
    if args.plain_child:
        plain_script(Path(args.plain_child[0]), Path(args.plain_child[1]), args)
        return 0

    if args.model_dir is None:
        from bench.recipes import demo_model_dir

        args.model_dir = demo_model_dir()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as scratch:
        data = write_conversations(Path(scratch) / "train.jsonl", args.conversations)
        print(
            f"model {args.model_dir}; {args.conversations} conversations of chatterbot-corpus, max length "
            f"{args.max_length}, batch {args.batch_size}, LoRA r{args.lora_r} all-linear, "
            f"{args.epochs} epoch(s)",
            flush=True,
        )
        results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
        for round_index in range(args.rounds):
            for arm in arms:
                result = run_arm(arm, args, data, Path(scratch) / f"{arm}-{round_index}")
                results[arm].append(result)
                if round_index == 0:  # what the trainer chose (batch layout, LM head, kernels)
                    for message in result["messages"]:
                        print(f"    {arm}: {message}", flush=True)
                print(
                    f"  round {round_index + 1} {arm:<6} {result['tokens_per_second']:7.1f} tokens/s  "
                    f"final loss {result['final_loss']:.4f}  mean loss {result['mean_loss']:.4f}  "
                    f"({result['tokens']} tokens, {result['steps']} steps, {result['seconds']:.1f}s)",
                    flush=True,
                )
    print_summary(results)
    print_mfu(results, args.model_dir, args.peak_tflops)
    return 0


def corpus() -> Iterator[tuple[str, list[str]]]:
    """(category, turns) of chatterbot-corpus's English conversations of two or more turns, in the
    corpus's own order (its files sorted)."""
    import chatterbot_corpus
    import yaml

    for path in sorted((Path(chatterbot_corpus.__file__).parent / "data" / "english").glob("*.yml")):
        for turns in yaml.safe_load(path.read_text())["conversations"]:
            if len(turns) >= 2:
                yield path.stem, [str(turn) for turn in turns]


def conversations(n: int) -> list[list[dict[str, str]]]:
    """`n` real multi-turn chats: chatterbot-corpus's English conversations of three or more turns,
    in a fixed shuffled order, as alternating user and assistant messages ending with the assistant."""
    chats = []
    for _, turns in corpus():
        if len(turns) < 3:
            continue
        turns = turns[: len(turns) - len(turns) % 2]  # end on the assistant's turn
        roles = ("user", "assistant")
        chats.append([{"role": roles[i % 2], "content": turn} for i, turn in enumerate(turns)])
    random.Random(SEED).shuffle(chats)
    if n > len(chats):
        raise SystemExit(f"the corpus has {len(chats)} multi-turn conversations; asked for {n}")
    return chats[:n]


def write_conversations(path: Path, n: int) -> Path:
    with path.open("w") as lines:
        for messages in conversations(n):
            lines.write(json.dumps({"messages": messages}) + "\n")
    return path


def run_arm(arm: str, args: argparse.Namespace, data: Path, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True)
    if arm == "tunery":
        command = [sys.executable, "-m", "worker.training", str(tunery_spec(args, data, directory))]
    else:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--plain-child",
            str(args.model_dir),
            str(data),
            "--max-length",
            str(args.max_length),
            "--batch-size",
            str(args.batch_size),
            "--lora-r",
            str(args.lora_r),
            "--epochs",
            str(args.epochs),
        ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT
    )
    assert process.stdout is not None
    # Only the progress lines: the plain Trainer also prints its log dicts to stdout.
    events = [
        (time.perf_counter(), json.loads(line)) for line in process.stdout if line.startswith('{"event"')
    ]
    stderr = process.stderr.read() if process.stderr else ""
    if process.wait() != 0:
        raise SystemExit(f"the {arm} arm failed:\n{stderr[-3000:]}")
    return summarise(events)


def tunery_spec(args: argparse.Namespace, data: Path, directory: Path) -> Path:
    from catalog.methods import base_learning_rate
    from worker.training.spec import Recipe, TrainingSpec

    spec = TrainingSpec(
        job_id="bench-throughput",
        base_model_dir=str(args.model_dir),
        training_file=str(data),
        output_dir=str(directory / "out"),
        n_epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=base_learning_rate("lora", "supervised"),
        seed=SEED,
        recipe=Recipe(max_seq_length=args.max_length, lora_r=args.lora_r),
    )
    spec.write(directory / "spec.json")
    return directory / "spec.json"


def summarise(events: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Both arms speak the trainer's protocol: `started`, a `metrics` line per step, `completed`."""
    started = next(at for at, event in events if event["event"] == "started")
    metrics = [(at, event) for at, event in events if event["event"] == "metrics"]
    tokens = next(event["trained_tokens"] for _, event in events if event["event"] == "completed")
    seconds = metrics[-1][0] - started
    losses = [event["train_loss"] for _, event in metrics]
    return {
        "tokens": tokens,
        "steps": len(metrics),
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "final_loss": losses[-1],
        "mean_loss": statistics.fmean(losses),
        "messages": [event["message"] for _, event in events if event["event"] == "message"],
    }


def print_summary(results: dict[str, list[dict[str, Any]]]) -> None:
    means = {arm: statistics.fmean(r["tokens_per_second"] for r in runs) for arm, runs in results.items()}
    print(f"{'arm':<8} {'tokens/s (mean)':>16} {'final loss':>11} {'mean loss':>10}")
    for arm in results:
        final = statistics.fmean(r["final_loss"] for r in results[arm])
        mean = statistics.fmean(r["mean_loss"] for r in results[arm])
        print(f"{arm:<8} {means[arm]:>16.1f} {final:>11.4f} {mean:>10.4f}")
    if len(means) == len(ARMS):
        print(f"tunery / plain: {means['tunery'] / means['plain']:.2f}x")


# Dense bf16 peaks by the vendors' datasheets, TFLOP/s; a name not here needs --peak-tflops.
DATASHEET_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0}


def print_mfu(results: dict[str, list[dict[str, Any]]], model_dir: Path, peak_tflops: float | None) -> None:
    """Model FLOPs utilisation on a GPU: about 4N FLOPs per non-padding token for LoRA (forward 2N,
    backward through the frozen weights 2N, the adapters' own weight gradients negligible)."""
    import torch

    if not torch.cuda.is_available():
        return
    name = torch.cuda.get_device_name()
    if peak_tflops is None:
        peak_tflops = next((peak for key, peak in DATASHEET_BF16_TFLOPS.items() if key in name), None)
    if peak_tflops is None:
        print(f"MFU: no datasheet peak for {name}; pass --peak-tflops")
        return
    from catalog.safetensors_headers import read_tensors

    tensors = read_tensors(model_dir) or {}
    parameters = sum(math.prod(tensor.shape) for tensor in tensors.values())
    for arm, runs in results.items():
        tokens_per_second = statistics.fmean(r["tokens_per_second"] for r in runs)
        mfu = 4 * parameters * tokens_per_second / (peak_tflops * 1e12)
        print(
            f"MFU {arm:<7} {mfu:.2%} ({parameters / 1e6:.0f}M parameters, 4N FLOPs a token, "
            f"{name} at {peak_tflops:.0f} TFLOP/s bf16)"
        )


def plain_script(model_dir: Path, data: Path, args: argparse.Namespace) -> None:
    """What a user writes: chat template, truncation, pad-to-longest, Trainer + peft LoRA."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from catalog.methods import base_learning_rate

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token

    def encode(messages: list[dict[str, str]]) -> dict[str, list[int]]:
        input_ids = tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]
        labels = [-100] * len(input_ids)
        for index, message in enumerate(messages):
            if message["role"] == "assistant":  # loss on the assistant's turns only
                start = len(
                    tokenizer.apply_chat_template(messages[:index], add_generation_prompt=True)["input_ids"]
                )
                end = len(tokenizer.apply_chat_template(messages[: index + 1])["input_ids"])
                labels[start:end] = input_ids[start:end]
        return {"input_ids": input_ids[: args.max_length], "labels": labels[: args.max_length]}

    rows = [encode(json.loads(line)["messages"]) for line in data.open()]
    dataset = Dataset.from_list(rows)

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        longest = max(len(row["input_ids"]) for row in batch)
        pad = [longest - len(row["input_ids"]) for row in batch]
        return {
            "input_ids": torch.tensor(
                [r["input_ids"] + [tokenizer.pad_token_id] * p for r, p in zip(batch, pad, strict=True)]
            ),
            "attention_mask": torch.tensor(
                [[1] * len(r["input_ids"]) + [0] * p for r, p in zip(batch, pad, strict=True)]
            ),
            "labels": torch.tensor([r["labels"] + [-100] * p for r, p in zip(batch, pad, strict=True)]),
        }

    # On a GPU a user loads bf16 weights (TRL's examples do); on the CPU fp32.
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model = get_peft_model(
        model,
        LoraConfig(
            r=args.lora_r,
            lora_alpha=16,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )

    def say(event: str, **fields: Any) -> None:
        print(json.dumps({"event": event, **fields}), flush=True)

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            say("started")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                say("metrics", step=state.global_step, train_loss=logs["loss"])

    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(data.parent / "plain-out"),
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=base_learning_rate("lora", "supervised"),
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            seed=SEED,
            data_seed=SEED,
            use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        ),
        train_dataset=dataset,
        data_collator=collate,
        callbacks=[Progress()],
    )
    trainer.train()
    say("completed", trained_tokens=args.epochs * sum(len(row["input_ids"]) for row in rows))


if __name__ == "__main__":
    sys.exit(main())
