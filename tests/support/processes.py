"""The API and a Celery worker as separate processes, started the way an operator starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.config import Settings
from tests.support.services import free_port


@dataclass(frozen=True)
class LiveService:
    base_url: str
    api_key: str
    settings: Settings
    logs: Path

    def log_tail(self, lines: int = 60) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)


def service_env(settings: Settings, api_key: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNERY_")}
    env.update(
        TUNERY_DATA_DIR=str(settings.data_path),
        TUNERY_API_KEY=api_key,
        PORT=str(port),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
    )
    if settings.database_url:
        env["TUNERY_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["TUNERY_BROKER_URL"] = settings.broker_url
    if settings.storage_url:
        env["TUNERY_STORAGE_URL"] = settings.storage_url
    if settings.s3_endpoint_url:
        env["TUNERY_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


@contextmanager
def live_service(
    settings: Settings,
    logs: Path,
    api_key: str = "tun-e2e-test-key-0123456789",
    extra_env: dict[str, str] | None = None,
) -> Iterator[LiveService]:
    """`tunery api` and `tunery worker`, each its own process, stopped afterwards."""
    port = free_port()
    env = {**service_env(settings, api_key, port), **(extra_env or {})}
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    try:
        for name in ("api", "worker"):
            log = (logs / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "api.cli", name], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        service = LiveService(f"http://127.0.0.1:{port}/v1", api_key, settings, logs)
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", processes[0], service)
        yield service
    finally:
        for process in processes:
            stop(process)


@contextmanager
def inference_process(settings: Settings, logs: Path, extra_env: dict[str, str]) -> Iterator[str]:
    """`tunery inference` on TUNERY_INFERENCE_PORT of `extra_env`, answering /health; yields its URL."""
    url = f"http://127.0.0.1:{extra_env['TUNERY_INFERENCE_PORT']}"
    env = {**service_env(settings, "unused-key-0123456789", 0), **extra_env}
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "inference.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "inference"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"tunery inference exited:\n{(logs / 'inference.log').read_text()}"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"tunery inference did not answer:\n{(logs / 'inference.log').read_text()}")
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_healthy(url: str, api: subprocess.Popen, service: LiveService, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise RuntimeError(f"the API exited with {api.returncode}:\n{service.log_tail()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer within {timeout}s:\n{service.log_tail()}")


class Cluster:
    """An API and any number of workers as separate processes, each started, killed and
    restarted at will: the fault-injection tests' harness."""

    def __init__(self, settings: Settings, logs: Path, extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.api_key = "tun-fault-test-key-0123456789"
        self.env = {**service_env(settings, self.api_key, self.port), **(extra_env or {})}
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._started = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start_api(self) -> None:
        self.api = self._spawn("api")
        service = LiveService(self.base_url, self.api_key, self.settings, self.logs)
        _wait_healthy(f"http://127.0.0.1:{self.port}/healthz", self.api, service)

    def start_worker(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """`env`: settings of this worker's own over the cluster's (another data directory, say)."""
        worker = self._spawn("worker", *args, env=env)
        self.workers.append(worker)
        return worker

    def log_tail(self) -> str:
        return LiveService(self.base_url, self.api_key, self.settings, self.logs).log_tail()

    def stop_all(self) -> None:
        for process in [*self.workers, *([self.api] if self.api else [])]:
            stop(process)

    def _spawn(self, command: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        self._started += 1
        log = (self.logs / f"{self._started:02d}-{command}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", command, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def trainer_pids(job_id: str) -> list[int]:
    """Trainer processes (python -m worker.training .../<job_id>/spec.json) now running."""
    pids = []
    for pid, proc in _processes():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker.training" in command and any(job_id.encode() in part for part in command):
            pids.append(pid)
    return pids


def unread_bytes(port: int) -> int:
    """Bytes that clients sent to the server on 127.0.0.1:`port` and it has not read yet: the receive
    queues of its established connections, as the kernel reports them in /proc/net/tcp."""
    waiting = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                waiting += int(queues.split(":")[1], 16)
    return waiting


def child_pids(parent: int) -> list[int]:
    children = []
    for pid, proc in _processes():
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:  # field 4, after the command's ")"
            children.append(pid)
    return children


def _processes() -> Iterator[tuple[int, Path]]:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            yield int(proc.name), proc
