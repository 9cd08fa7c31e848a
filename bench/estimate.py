"""The memory estimate (catalog/estimate.py) against torch.cuda.max_memory_allocated, on a GPU.

    python bench/estimate.py --model-dir PATH                # lora, qlora and full on a local model
    python bench/estimate.py --model-dir PATH --recipes lora --batch-size 4 --seq-len 1024

Each recipe runs in its own child process (`--child`): the recipe family builds the model as the
trainer does, a few AdamW steps run on random tokens of batch x seq-len, and the peak of
torch.cuda.max_memory_allocated is set beside the estimate's total per GPU for the same recipe,
batch and precision (bf16). The ratio measured / estimated is the figure to read (1.0: exact). The
CPU test (tests/training/test_estimate_accuracy.py) checks the parameter, gradient and optimizer
bytes; only a GPU shows the activations and the allocator. Needs CUDA: it says so and exits 2 without.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def child(model_dir: Path, recipe_json: str, batch_size: int, seq_len: int, steps: int) -> dict[str, float]:
    import torch

    from catalog.estimate import estimate_memory
    from catalog.safetensors_headers import model_shape
    from worker.training.base_model import BaseModel
    from worker.training.precision import resolve_precision
    from worker.training.recipes import get_recipe
    from worker.training.spec import Recipe, TrainingSpec

    recipe = Recipe.from_dict({**json.loads(recipe_json), "max_seq_length": seq_len, "precision": "bf16"})
    with tempfile.TemporaryDirectory() as scratch:
        spec = TrainingSpec(
            job_id="bench",
            base_model_dir=str(model_dir),
            training_file=str(model_dir / "config.json"),
            output_dir=scratch,
            n_epochs=1,
            batch_size=batch_size,
            learning_rate=1e-5,
            seed=0,
            recipe=recipe,
        )
        model = get_recipe(recipe.type).build(
            spec, BaseModel(str(model_dir), "CAUSAL_LM", resolve_precision("bf16"))
        )
    model.to("cuda")
    if recipe.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    vocab = model.config.vocab_size
    torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        ids = torch.randint(0, vocab, (batch_size, seq_len), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    measured = torch.cuda.max_memory_allocated()
    shape = model_shape(model_dir)
    assert shape is not None, f"{model_dir} has no safetensors"
    estimated = estimate_memory(recipe, shape, precision="bf16", batch_size=batch_size).total_bytes_per_gpu
    return {"measured": measured, "estimated": estimated}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--recipes", default="lora,qlora,full")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model_dir, args.child, args.batch_size, args.seq_len, args.steps)))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("bench/estimate.py compares with torch.cuda.max_memory_allocated: it needs a CUDA GPU.")
        return 2
    print(f"{'recipe':8} {'estimated':>12} {'measured':>12} {'measured/estimated':>20}")
    for name in args.recipes.split(","):
        recipe = json.dumps({"type": name, "gradient_checkpointing": args.checkpointing})
        command = [sys.executable, __file__, "--model-dir", str(args.model_dir), "--child", recipe]
        command += [
            "--batch-size",
            str(args.batch_size),
            "--seq-len",
            str(args.seq_len),
            "--steps",
            str(args.steps),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name:8} failed: {done.stderr[-500:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        gib = 2**30
        print(
            f"{name:8} {row['estimated'] / gib:10.2f}Gi {row['measured'] / gib:10.2f}Gi "
            f"{row['measured'] / row['estimated']:20.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
