"""2-process DDP against 1 process on the same data and seed: tokens/s, per-process peak memory, and
the two loss curves side by side (they should agree within a few percent).

    python bench/distributed.py                        # the demo model (SmolLM2-135M-Instruct)
    python bench/distributed.py --model-dir PATH --steps 8 --batch-size 4 --seq-len 128

Both runs go through the worker's own supervisor (worker/supervisor.py, worker/ranks.py) and the
trainer's protocol, as a job would: gloo on CPU, NCCL where there are 2 GPUs. Throughput counts the
tokens of the steps after the first over the time between their metrics lines. Peak memory is each
rank's peak resident set (VmHWM), read from /proc while it runs. On CPU every process gets one
thread (OMP_NUM_THREADS=1, as accelerate sets for multi-process CPU runs), the baseline too. FSDP
is not trained yet; when it is, it is one more row here.
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


def run(model_dir: Path, processes: int, args: argparse.Namespace) -> dict[str, Any]:
    from worker.supervisor import run_trainer
    from worker.training.progress import Completed, Metrics
    from worker.training.spec import Recipe, TrainingSpec

    distributed = "ddp" if processes > 1 else "none"
    with tempfile.TemporaryDirectory(prefix=f"bench-ddp{processes}-") as scratch:
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
                type="lora", max_seq_length=args.seq_len, distributed=distributed, num_gpus=processes
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
        return {
            "tokens_per_second": tokens_per_step * (len(timed) - 1) / seconds,
            "peak_mib": {rank: kib / 1024 for rank, kib in sorted(peaks.items())},
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
    args = parser.parse_args()
    # accelerate gives each process of a multi-process CPU run one thread; the baseline gets the same,
    # or the comparison measures thread contention instead of data parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model_dir = args.model_dir or demo_model_dir()
    print(f"model {model_dir}; {args.steps} steps of {args.batch_size} x {args.seq_len} tokens; lora")
    one = run(model_dir, 1, args)
    two = run(model_dir, 2, args)
    ratio = two["tokens_per_second"] / one["tokens_per_second"]
    print(f"{'run':10} {'tokens/s':>10} {'ratio':>7}  peak RSS per process (MiB)")
    for name, row, r in (("1 process", one, 1.0), ("2 x ddp", two, ratio)):
        peaks = ", ".join(f"rank {rank}: {mib:.0f}" for rank, mib in row["peak_mib"].items())
        print(f"{name:10} {row['tokens_per_second']:10.1f} {r:7.2f}  {peaks}")
    print(f"{'step':>4} {'1 process':>10} {'2 x ddp':>10}")
    for step, (a, b) in enumerate(zip(one["losses"], two["losses"], strict=False), start=1):
        print(f"{step:4d} {a:10.4f} {b:10.4f}")
    worst = max(abs(a - b) / max(abs(a), 1e-9) for a, b in zip(one["losses"], two["losses"], strict=False))
    print(f"largest relative loss difference: {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
