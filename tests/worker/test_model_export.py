"""Downloads that load without Tunery: a real LoRA on the tiny Llama, fetched through the API as an
adapter and as a merged model (made by the export task, called in-process), loaded with plain peft and
transformers."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from urllib.parse import quote

import pytest
import torch
from fastapi.testclient import TestClient

from api.fine_tuning import artifacts
from api.models.downloads import export_ready
from tests.api.test_jobs import create
from tests.support.api_objects import succeed_with_checkpoints
from tests.support.storage import to_store
from worker.jobs import export
from worker.runtime import Runtime
from worker.training import merge

pytestmark = pytest.mark.integration
PROMPT = "hello there, how are you?"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def lora_model(client: TestClient, app, training_file: str, tiny_model_dir: Path, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def]
    """A finished job whose stored artifact is a real, non-trivial LoRA, saved as the trainer saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job_id = create(client, training_file).json()["id"]
    succeed_with_checkpoints(app, job_id, steps=(4,))
    directory = artifacts.adapter_dir(app.state.settings, job_id)
    shutil.rmtree(directory, ignore_errors=True)  # on S3 it is in the bucket already
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.float32)
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    )
    with torch.no_grad():  # B starts at zero: give the adapter an effect to merge
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.2)
    model.save_pretrained(str(directory), selected_adapters=["default"])
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    record = {"job_id": job_id, "method": {"type": "supervised"}, "artifact_format": "peft", "recipe": {}}
    (directory / "tunery.json").write_text(json.dumps(record))
    reference = tmp_path / "stored-adapter"  # what the tests compare with, whichever the backend
    shutil.copytree(directory, reference)
    to_store(app.state.settings, directory)  # on S3: into the bucket, and off this disk
    name = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["fine_tuned_model"]
    return {"job_id": job_id, "name": name, "dir": reference}


@pytest.fixture
def rt(app) -> Runtime:  # type: ignore[no-untyped-def]
    from api.files.storage import FileStorage

    settings = app.state.settings
    return Runtime(settings, app.state.sessionmaker, FileStorage.of(settings), app.state.model_store)


def test_the_downloaded_adapter_loads_with_peft_and_gives_the_stored_logits(
    client: TestClient, lora_model: dict, tiny_model_dir: Path, tmp_path: Path
) -> None:
    response = client.get(f"/v1/models/{quote(lora_model['name'], safe='')}/download?format=adapter")
    assert response.status_code == 200
    _untar(response.content, tmp_path / "download")
    downloaded = _adapter_logits(tiny_model_dir, tmp_path / "download" / "adapter")
    stored = _adapter_logits(tiny_model_dir, lora_model["dir"])
    assert torch.equal(downloaded, stored)
    assert not torch.allclose(stored, _plain_logits(tiny_model_dir), atol=1e-3)  # the adapter does something


def test_the_merged_download_loads_with_transformers_and_matches_base_plus_adapter(
    client: TestClient, lora_model: dict, rt: Runtime, tiny_model_dir: Path, tmp_path: Path
) -> None:
    url = f"/v1/models/{quote(lora_model['name'], safe='')}/download?format=merged"
    sent: list[tuple] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("api.queue.enqueue", lambda settings, task, *args, **kw: sent.append(args))
        assert client.get(url).status_code == 202
    assert sent == [(lora_model["job_id"], None)]
    assert export.export_model(rt, *sent[0]) is not None  # what the worker's task runs

    response = client.get(url)
    assert response.status_code == 200
    _untar(response.content, tmp_path / "merged")
    model_dir = tmp_path / "merged" / "model"
    assert not (model_dir / "adapter_config.json").exists()
    assert (model_dir / "model.safetensors").exists() and (model_dir / "tokenizer_config.json").exists()
    plain = _plain_logits(model_dir)
    assert (plain - _adapter_logits(tiny_model_dir, lora_model["dir"])).abs().max() < merge.TOLERANCE[
        torch.float32
    ]
    check = json.loads((model_dir / "tunery.json").read_text())["export"]["check"]
    assert check["passed"] is True and check["max_abs_logit_diff"] < check["tolerance"]
    messages = [
        e["message"] for e in client.get(f"/v1/fine_tuning/jobs/{lora_model['job_id']}/events").json()["data"]
    ]
    assert any(m.startswith("Merging the adapter into the base") for m in messages)
    assert any(m.startswith("Merged export ready") for m in messages)


def test_an_export_failing_its_check_is_not_offered_and_the_job_says_so(
    client: TestClient, lora_model: dict, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(merge.TOLERANCE, torch.float32, -1.0)  # no difference is small enough
    assert export.export_model(rt, lora_model["job_id"], None) is None
    response = client.get(f"/v1/models/{quote(lora_model['name'], safe='')}/download?format=merged")
    assert response.status_code == 409 and response.json()["error"]["code"] == "merged_export_failed"
    assert not artifacts.merged_dir(rt.settings, lora_model["job_id"], None).exists()
    events = client.get(f"/v1/fine_tuning/jobs/{lora_model['job_id']}/events").json()["data"]
    assert any(e["level"] == "error" and "not offered" in e["message"] for e in events)


def _untar(archive: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        tar.extractall(into, filter="data")


def _adapter_logits(base_dir: Path, adapter_dir: Path) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    return _logits(PeftModel.from_pretrained(base, adapter_dir), base_dir)


def _plain_logits(model_dir: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    return _logits(AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32), model_dir)


def _logits(model, tokenizer_dir: Path) -> torch.Tensor:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    inputs = AutoTokenizer.from_pretrained(tokenizer_dir)(PROMPT, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


def test_the_cli_export_writes_both_formats(
    lora_model: dict, app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from api.cli import main

    settings = app.state.settings
    monkeypatch.setenv("TUNERY_DATA_DIR", str(settings.data_dir))
    for name, value in (
        ("TUNERY_STORAGE_URL", settings.storage_url),
        ("TUNERY_S3_ENDPOINT_URL", settings.s3_endpoint_url),
    ):
        if value:
            monkeypatch.setenv(name, value)
    assert (
        main(["models", "export", lora_model["name"], "--format", "adapter", "-o", str(tmp_path / "a")]) == 0
    )
    assert (tmp_path / "a" / "adapter_model.safetensors").read_bytes() == (
        lora_model["dir"] / "adapter_model.safetensors"
    ).read_bytes()
    assert (
        main(["models", "export", lora_model["name"], "--format", "merged", "-o", str(tmp_path / "m")]) == 0
    )
    assert json.loads((tmp_path / "m" / "tunery.json").read_text())["export"]["check"]["passed"] is True
    merged = artifacts.merged_dir(settings, lora_model["job_id"], None)
    assert merged.is_dir() and export_ready(settings, merged)  # kept for the API
    assert main(["models", "export", "ft:nothing", "-o", str(tmp_path / "x")]) == 2
    assert "No fine-tuned or checkpoint model" in capsys.readouterr().err
