"""A model directory with a real model's tokenizer and architecture but seeded random weights.

    python bench/random_model.py --like PATH --out DIR                       # the same shape
    python bench/random_model.py --like PATH --out DIR --hidden-size 2048 --intermediate-size 8192 \
        --layers 24 --heads 32 --kv-heads 32                                  # SmolLM2-1.7B's shape

For machines that can reach no weights (the GPU machine takes 64 MiB of files; the demo model's
weights are 269 MB): training speed, memory and FLOPs depend on the shape alone, so the benchmarks
run on these unchanged. Losses start near ln(vocabulary) instead of a trained model's, the same in
every arm (one seed), so the arms' losses still compare. `--like` needs only config.json and the
tokenizer's files; the weights are written as bf16 safetensors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

SHAPE_OPTIONS = {
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "layers": "num_hidden_layers",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--like", type=Path, required=True, help="config.json and a tokenizer's files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    for option in SHAPE_OPTIONS:
        parser.add_argument(f"--{option.replace('_', '-')}", type=int)
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.like.iterdir():
        if path.is_file() and path.suffix != ".safetensors" and path.name != "config.json":
            shutil.copy(path, args.out / path.name)
    config = AutoConfig.from_pretrained(args.like)
    for option, field in SHAPE_OPTIONS.items():
        if getattr(args, option) is not None:
            setattr(config, field, getattr(args, option))
    if any(getattr(args, option) is not None for option in SHAPE_OPTIONS):
        config.head_dim = config.hidden_size // config.num_attention_heads
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(args.out)
    parameters = sum(p.numel() for p in model.parameters())
    print(json.dumps({"out": str(args.out), "parameters": parameters}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
