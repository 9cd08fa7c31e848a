"""The embedded inference backend on the demo model, each number against a baseline measured in the
same run:

- generation tokens/s through the server (its HTTP routes, in-process) / plain transformers `generate`
  on the same prompt, greedy, in this process;
- the added latency of the first request to a LoRA adapter not loaded yet (over the same request once
  it is loaded);
- tokens/s of 8 concurrent requests over 4 adapters (batched) / the same 8 one after another.

    python bench/inference.py                  # the demo model (SmolLM2-135M-Instruct), imported once
    python bench/inference.py --model-dir PATH --tokens 64

The adapters are random LoRA weights (r=8 on q_proj and v_proj): what they say is noise, the cost of
serving them is real. Not a test: it prints, and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.recipes import demo_model_dir  # noqa: E402

MODEL_ID = "demo"
MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, help="a local model directory (default: the demo model)")
    parser.add_argument("--tokens", type=int, default=48, help="tokens generated per request")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each single-request measurement")
    args = parser.parse_args()
    model_dir = args.model_dir or demo_model_dir()

    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.models.store import ModelStore
    from worker.inference.server import create_inference_app

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), inference_max_adapters=4, inference_max_queue=16)
        ModelStore(settings.models_path).import_directory(model_dir, MODEL_ID)
        adapters = [
            lora_adapter(settings.artifacts_path / f"ftjob-{i}" / "adapter", model_dir, i) for i in range(4)
        ]
        with TestClient(create_inference_app(settings)) as server:
            engine = server.app.state.engine  # type: ignore[attr-defined]
            print(f"model {model_dir}; {args.tokens} tokens a request, greedy; device {engine.pool.device}")
            chat(server, None, 4)  # warm-up: loads the base model
            plain = plain_tokens_per_second(engine.pool, args.tokens, args.repeats)
            served = statistics.median(
                tokens_per_second(server, None, args.tokens) for _ in range(args.repeats)
            )
            print(
                f"generation: server {served:.1f} tok/s, plain generate {plain:.1f} tok/s, "
                f"ratio {served / plain:.2f}"
            )

            first = timed(lambda: chat(server, adapters[0], 1))
            loaded = statistics.median(
                timed(lambda: chat(server, adapters[0], 1)) for _ in range(args.repeats)
            )
            print(
                f"first request to an unloaded adapter: {first * 1000:.0f} ms, loaded: "
                f"{loaded * 1000:.0f} ms, added {(first - loaded) * 1000:.0f} ms"
            )

            for adapter in adapters:
                chat(server, adapter, 1)  # all four loaded: the next lines measure generation alone
            requests = [adapters[i % 4] for i in range(8)]
            start = time.perf_counter()
            sequential_tokens = sum(chat(server, adapter, args.tokens) for adapter in requests)
            sequential = sequential_tokens / (time.perf_counter() - start)
            batches_before = len(engine.batch_sizes)
            start = time.perf_counter()
            with ThreadPoolExecutor(8) as threads:
                concurrent_tokens = sum(threads.map(lambda a: chat(server, a, args.tokens), requests))
            concurrent = concurrent_tokens / (time.perf_counter() - start)
            print(
                f"8 requests over 4 adapters: concurrent {concurrent:.1f} tok/s (batches "
                f"{engine.batch_sizes[batches_before:]}), one after another {sequential:.1f} tok/s, "
                f"ratio {concurrent / sequential:.2f}"
            )
    return 0


def chat(server: Any, adapter: Path | None, tokens: int) -> int:
    """One greedy request; the completion tokens it got."""
    target = {"base_model": MODEL_ID, "artifact_dir": str(adapter) if adapter else None}
    body = {"model": "bench", "messages": MESSAGES, "max_tokens": tokens, "temperature": 0, "target": target}
    response = server.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["usage"]["completion_tokens"])


def tokens_per_second(server: Any, adapter: Path | None, tokens: int) -> float:
    start = time.perf_counter()
    produced = chat(server, adapter, tokens)
    return produced / (time.perf_counter() - start)


def plain_tokens_per_second(pool: Any, tokens: int, repeats: int) -> float:
    """transformers alone, on the server's own copy of the model: the same weights, the same prompt."""
    import torch

    servable = pool.get(MODEL_ID, None)
    prompt = servable.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt")
    input_ids = (prompt["input_ids"] if not torch.is_tensor(prompt) else prompt).to(pool.device)
    rates = []
    with servable.active() as model, torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=tokens,
                do_sample=False,
                eos_token_id=servable.stop_token_ids,
                pad_token_id=servable.stop_token_ids[0],
            )
            rates.append((out.shape[1] - input_ids.shape[1]) / (time.perf_counter() - start))
    return statistics.median(rates)


def lora_adapter(directory: Path, model_dir: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config).save_pretrained(str(directory))
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(directory)
    record = {"job_id": directory.parent.name, "method": "supervised", "artifact_format": "peft"}
    (directory / "tunery.json").write_text(json.dumps(record))
    return directory


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
