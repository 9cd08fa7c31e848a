"""2-process DDP and 2-process FSDP against 1 process on the same data and seed: tokens/s, per-process
peak memory, and the loss curves side by side (they should agree within a few percent).

    python bench/fsdp.py                        # the demo model (SmolLM2-135M-Instruct)
    python bench/fsdp.py --model-dir PATH --steps 8 --batch-size 4 --seq-len 128 --type full

Both runs go through the worker's own supervisor (worker/supervisor.py, worker/ranks.py) and the
trainer's protocol, as a job would: gloo on CPU, NCCL where there are 2 GPUs. Throughput counts the
tokens of the steps after the first over the time between their metrics lines. Peak memory is each
rank's peak resident set (VmHWM), read from /proc while it runs. On CPU every process gets one
thread (OMP_NUM_THREADS=1, as accelerate sets for multi-process CPU runs), the baseline too. On a
GPU the peak is the metrics lines' torch.cuda.max_memory_allocated of rank 0 (its RSS beside it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.recipes import demo_model_dir, write_examples  # noqa: E402


def peak_rss_of_ranks(spec_path: Path, peaks: dict[int, int]) -> None:
    """Fold each rank's current VmHWM (KiB) into `peaks`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(spec_path).encode() not in (entry / "cmdline").read_bytes():
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        rank = int(next((v[5:] for v in environ if v.startswith(b"RANK=")), b"0"))
        hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
        peaks[rank] = max(peaks.get(rank, 0), hwm)


def run(model_dir: Path, distributed: str, args: argparse.Namespace) -> dict[str, Any]:
    from worker.supervisor import run_trainer
    from worker.training.progress import Completed, Metrics
    from worker.training.spec import Recipe, TrainingSpec

    processes = 1 if distributed == "none" else 2
    with tempfile.TemporaryDirectory(prefix=f"bench-{distributed}{processes}-") as scratch:
        directory = Path(scratch)
        write_examples(directory / "train.jsonl", args.steps * args.batch_size)
        spec = TrainingSpec(
            job_id=f"bench-{processes}",
            base_model_dir=str(model_dir),
            training_file=str(directory / "train.jsonl"),
            output_dir=str(directory / "out"),
            n_epochs=1,
            batch_size=args.batch_size,
            learning_rate=2e-4,
            seed=0,
            recipe=Recipe(
                type=args.type,
                max_seq_length=args.seq_len,
                # No dropout: its masks are drawn per rank, and would set the curves apart.
                **({"lora_dropout": 0.0} if args.type == "lora" else {}),
                distributed=distributed,
                num_gpus=processes,
            ),
        )
        spec.write(directory / "spec.json")
        timed: list[tuple[float, Metrics]] = []
        peaks: dict[int, int] = {}

        def on_event(event: Any) -> None:
            if isinstance(event, Metrics):
                timed.append((time.perf_counter(), event))
            peak_rss_of_ranks(directory / "spec.json", peaks)

        done = run_trainer(directory / "spec.json", directory / "trainer.log", on_event, None, processes)
        if not isinstance(done.final_event, Completed):
            raise SystemExit(f"{processes}-process run failed: {done.final_event} {done.stderr_tail}")
        tokens_per_step = done.final_event.trained_tokens / len(timed)
        seconds = timed[-1][0] - timed[0][0]
        gpu_peaks = [event.gpu_memory_bytes for _, event in timed if event.gpu_memory_bytes]
        return {
            "tokens_per_second": tokens_per_step * (len(timed) - 1) / seconds,
            "peak_mib": {rank: kib / 1024 for rank, kib in sorted(peaks.items())},
            "gpu_peak_mib": max(gpu_peaks) / 2**20 if gpu_peaks else None,
            "losses": [event.train_loss for _, event in timed],
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4, help="per step, over all processes")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--type", default="lora", choices=["lora", "qlora", "full"], help="recipe type")
    args = parser.parse_args()
    # accelerate gives each process of a multi-process CPU run one thread; the baseline gets the same,
    # or the comparison measures thread contention instead of data parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model_dir = args.model_dir or demo_model_dir()
    steps = f"{args.steps} steps of {args.batch_size} x {args.seq_len} tokens"
    print(f"model {model_dir}; {steps}; {args.type}")
    runs = {"1 process": run(model_dir, "none", args)}
    runs["2 x ddp"] = run(model_dir, "ddp", args)
    runs["2 x fsdp"] = run(model_dir, "fsdp", args)
    one = runs["1 process"]
    print(f"{'run':10} {'tokens/s':>10} {'ratio':>7} {'GPU MiB':>8}  peak RSS per process (MiB)")
    for name, row in runs.items():
        ratio = row["tokens_per_second"] / one["tokens_per_second"]
        gpu = f"{row['gpu_peak_mib']:8.0f}" if row["gpu_peak_mib"] else f"{'-':>8}"
        peaks = ", ".join(f"rank {rank}: {mib:.0f}" for rank, mib in row["peak_mib"].items())
        print(f"{name:10} {row['tokens_per_second']:10.1f} {ratio:7.2f} {gpu}  {peaks}")
    print(f"{'step':>4} " + " ".join(f"{name:>10}" for name in runs))
    for step, losses in enumerate(zip(*(row["losses"] for row in runs.values()), strict=False), start=1):
        print(f"{step:4d} " + " ".join(f"{loss:10.4f}" for loss in losses))
    for name in ("2 x ddp", "2 x fsdp"):
        pairs = list(zip(one["losses"], runs[name]["losses"], strict=False))
        worst = max(abs(a - b) / max(abs(a), 1e-9) for a, b in pairs)
        print(f"largest relative loss difference, {name} vs 1 process: {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
