"""Ask a fine-tuned model a question, next to its base model.

    .venv/bin/python examples/try_adapter.py ftjob-... "What is the capital of Peru?"

Downloads the job's adapter from the API, loads it with PeftModel.from_pretrained on the base
model from the local model store, and prints both answers. Reads the same settings as `tunery`
(TUNERY_DATA_DIR, TUNERY_MODEL_STORE, TUNERY_API_KEY or the key file, PORT).
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path

import httpx
import torch
from openai import OpenAI
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from api.config import Settings


def main(job_id: str, question: str) -> None:
    settings = Settings()
    key = settings.api_key or settings.api_key_file.read_text().strip()
    base_url = f"http://{settings.host}:{settings.port}/v1"
    job = OpenAI(base_url=base_url, api_key=key).fine_tuning.jobs.retrieve(job_id)
    if job.status != "succeeded":
        sys.exit(f"{job_id} is {job.status}, not succeeded")
    with tempfile.TemporaryDirectory() as scratch:
        # The adapter comes as a plain tar that unpacks to adapter/; streamed to disk, since a whole
        # model (the full and freeze recipes) can be gigabytes.
        archive = Path(scratch) / "adapter.tar"
        with httpx.stream(
            "GET",
            f"{base_url}/fine_tuning/jobs/{job_id}/adapter",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ) as response:
            response.raise_for_status()
            with archive.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        with tarfile.open(archive, mode="r:") as tar:
            tar.extractall(scratch, filter="data")
        adapter_dir = Path(scratch) / "adapter"
        tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
        base = AutoModelForCausalLM.from_pretrained(settings.models_path / job.model, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, adapter_dir)

        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )

        def answer() -> str:
            with torch.no_grad():
                output = model.generate(**inputs, max_new_tokens=40, do_sample=False)
            return tokenizer.decode(
                output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True
            ).strip()

        with model.disable_adapter():
            print(f"{job.model}: {answer()}")
        print(f"{job.fine_tuned_model}: {answer()}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
