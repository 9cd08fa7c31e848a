"""Settings: every knob is an environment variable, read once per process."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNERY_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".tunery"),
        description="Where the embedded database, uploaded files, artifacts, base models and the "
        "filesystem broker live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Unset: SQLite at DATA_DIR/tunery.db. Postgres: "
        "postgresql+psycopg://user@host/db (a plain postgresql:// URL is accepted too).",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker. Unset: the filesystem transport under DATA_DIR/broker. "
        "Production: redis://host:6379/0.",
    )
    api_key: str | None = Field(
        default=None,
        description="A key the API accepts for the default project. Unset: `tunery serve` makes one "
        "and keeps it in DATA_DIR/api-key.",
    )
    admin_key: str | None = Field(
        default=None,
        description="A key that sees every project (the ops dashboard's). Unset: no admin key unless one "
        "is made with `tunery keys create --admin`.",
    )
    storage_url: str | None = Field(
        default=None,
        description="Where uploaded files, result files, artifacts and checkpoints live. Unset: the data "
        "directory (one machine, or a directory every machine mounts). s3://bucket/prefix: any "
        "S3-compatible store (credentials from the usual AWS_* variables); DATA_DIR is then each "
        "process's own scratch and cache.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3 API's address for a store other than AWS (MinIO, Ceph, GCS interoperability): "
        "http://minio:9000. Unset: AWS S3 in AWS_REGION or AWS_DEFAULT_REGION.",
    )
    model_store: Path | None = Field(
        default=None, description="Directory of base models. Unset: DATA_DIR/models."
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024, description="Uploads larger than this are refused with 413."
    )
    max_line_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="The longest line (one example, newline included) an upload may have; a longer one is "
        "refused with 400 naming the line. Validating a line costs up to about 25 times its size in memory.",
    )
    max_lines: int = Field(
        default=1_000_000,
        ge=1,
        description="The most lines (blank ones included) an upload may have; more are refused with 400. "
        "Uploads are validated in the request, so this bounds its time.",
    )
    lease_seconds: int = Field(
        default=30,
        ge=3,
        description="How long a worker's claim on a running job lasts without a heartbeat; after it "
        "expires the job is queued again for another worker.",
    )
    heartbeat_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often a worker renews its lease and looks for cancel and pause requests.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Runs of one job (first run plus restarts after lost workers) before it fails.",
    )
    reconcile_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often each worker re-enqueues jobs the broker lost and those of dead workers.",
    )
    estimate_tokens_per_second: float = Field(
        default=1000.0,
        gt=0,
        description="Training tokens/s per GPU that duration estimates assume for a pool that has not yet "
        "finished a job of the same base model and recipe type (then its measured rate is used).",
    )
    checkpoint_every_steps: int | None = Field(
        default=None, ge=1, description="Extra resumable checkpoints every N steps (always one per epoch)."
    )
    checkpoint_every_minutes: float | None = Field(
        default=10.0, gt=0, description="Extra resumable checkpoints every N minutes of training."
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="Database connections each process keeps (each API worker, each Celery worker).",
    )
    db_max_overflow: int = Field(
        default=10,
        ge=0,
        description="Connections beyond the pool under load; their sum bounds one API worker's "
        "concurrent requests that use the database. An API of N workers opens up to "
        "N x (DB_POOL_SIZE + DB_MAX_OVERFLOW) connections: keep that under Postgres' max_connections.",
    )
    db_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The longest a request waits for the database: for a free slot, a pooled connection, "
        "SQLite's write lock or a Postgres lock or statement. Past it the API answers 503 with "
        "Retry-After (the openai SDK retries it).",
    )
    api_workers: int | None = Field(
        default=None,
        ge=1,
        description="API processes `tunery api` and `tunery serve` run (uvicorn workers on one port). "
        "Unset: the number of cores this process may use.",
    )
    rate_limit_jobs_per_minute: int = Field(
        default=60, ge=0, description="Job creations per API key per minute; more get 429 (0: no limit)."
    )
    rate_limit_uploads_per_minute: int = Field(
        default=60, ge=0, description="File uploads per API key per minute; more get 429 (0: no limit)."
    )
    inference_url: str | None = Field(
        default=None,
        description="Base URL of the inference backend the API forwards chat, completions and "
        "classifications to (its /v1 routes). Unset: the embedded one, http://127.0.0.1:INFERENCE_PORT, "
        "which `tunery serve` starts beside the API (`tunery inference` alone).",
    )
    inference_backends: dict[str, str] = Field(
        default_factory=dict,
        description="Which inference backend serves which model, as JSON: a base model id (its "
        'LoRA fine-tunes follow it) or a fine-tuned model\'s name, to "embedded" or '
        '"vllm:http://host:port" (a vLLM OpenAI server started with --enable-lora and '
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, which reads the adapters at their paths under DATA_DIR). "
        "Unlisted models: the embedded backend. Full, freeze and bitfit fine-tunes and classifiers "
        "of a vLLM base go to the embedded backend unless listed by their own name.",
    )
    inference_port: int = Field(
        default=8001,
        description="Port `tunery inference` listens on (on INFERENCE_HOST).",
    )
    inference_host: str = Field(
        default="127.0.0.1",
        description="Address `tunery inference` binds. It has no keys of its own and trusts the API to "
        "have checked who may use which model: keep it on 127.0.0.1, or on a private network only (a "
        "container's 0.0.0.0 with its port left unpublished). Not TUNERY_HOST, which the images set to "
        "0.0.0.0 for the API.",
    )
    inference_max_adapters: int = Field(
        default=4,
        ge=1,
        description="Fine-tuned models (adapters, or whole models for full/freeze/bitfit) the embedded "
        "backend keeps loaded; the least recently used is unloaded past it and loads again when asked for. "
        "Base models are loaded once each and always stay.",
    )
    inference_max_queue: int = Field(
        default=16,
        ge=0,
        description="Requests the embedded backend lets wait while it generates for another (it generates "
        "for one at a time); past it, requests get 429 with Retry-After.",
    )
    vllm_max_lora_rank: int = Field(
        default=64,
        ge=1,
        description="The largest LoRA rank the `serving` field of a model counts as loadable by vLLM as it "
        "is: vLLM's --max-lora-rank of the deployment (vLLM's own default is 16).",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhook URLs point at loopback, link-local and private addresses (a single-machine "
        "install's own receiver). Off: such URLs are refused when registered and again when each delivery "
        "resolves them, so a webhook cannot reach into the internal network.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long one webhook delivery attempt waits for the receiver's answer.",
    )
    webhook_retry_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The wait before a failed webhook delivery's first retry; each further retry waits twice "
        "as long as the one before (at most WEBHOOK_RETRY_MAX_SECONDS).",
    )
    webhook_retry_max_seconds: float = Field(
        default=3 * 3600.0, gt=0, description="The longest wait between two attempts of one webhook delivery."
    )
    webhook_retry_window_seconds: int = Field(
        default=24 * 3600,
        ge=0,
        description="How long after its event a webhook delivery is still retried; then it is given up.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="A bearer token that may read GET /metrics (for a Prometheus scraper) besides the admin "
        "key. Unset: only admin keys may.",
    )
    ray_address: str | None = Field(
        default=None,
        description="The Ray cluster that trains jobs with recipe num_nodes above 1: its head's dashboard "
        "(Job Submission API), http://ray-head:8265. Unset: such jobs are refused at create.",
    )
    ray_placement_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a multi-node run may wait for the Ray cluster to place its ranks before it "
        "fails saying what it asked for and what the cluster has.",
    )
    host: str = Field(default="127.0.0.1", description="Address `tunery serve` and `tunery api` bind.")
    port: int = Field(default=8000, validation_alias="PORT", description="Port of the API (env PORT).")

    @field_validator("api_workers", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose.yml passes ${TUNERY_API_WORKERS:-}: an empty value means the default.
        return None if value == "" else value

    @field_validator("storage_url", "s3_endpoint_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("storage_url")
    @classmethod
    def _known_storage(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme, _, rest = url.partition("://")
        if scheme != "s3" or not rest.split("/", 1)[0]:
            raise ValueError(
                f"TUNERY_STORAGE_URL is {url!r}: give s3://bucket/prefix (an S3-compatible store), or leave "
                "it unset for the data directory"
            )
        return url

    @field_validator("inference_backends")
    @classmethod
    def _known_backends(cls, backends: dict[str, str]) -> dict[str, str]:
        for model, backend in backends.items():
            if backend != "embedded" and not backend.startswith(("vllm:http://", "vllm:https://")):
                raise ValueError(
                    f'TUNERY_INFERENCE_BACKENDS[{model!r}] is {backend!r}: give "embedded" or '
                    '"vllm:http://host:port"'
                )
        return backends

    def vllm_url_for(self, *models: str) -> str | None:
        """The vLLM server the first of `models` listed in inference_backends goes to; None: embedded."""
        for model in models:
            backend = self.inference_backends.get(model)
            if backend is not None:
                return None if backend == "embedded" else backend.removeprefix("vllm:").rstrip("/")
        return None

    grader_cpu_seconds: int = Field(
        default=10, ge=1, description="CPU time a python grader may use on one sample (graders/sandbox.py)."
    )
    grader_memory_mb: int = Field(
        default=1024, ge=64, description="Address space a python grader may take on one sample, in MiB."
    )
    grader_wall_seconds: float = Field(
        default=30.0, gt=0, description="Wall-clock time a python grader may take on one sample."
    )

    @property
    def api_worker_count(self) -> int:
        if self.api_workers:
            return self.api_workers
        # The cores this process may run on (a container's cpuset), not the whole machine's.
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    @cached_property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if not self.database_url:
            return f"sqlite:///{self.data_path / 'tunery.db'}"
        url = self.database_url
        # psycopg 3 is the driver we ship; accept the URLs people paste from elsewhere.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def inference_base_url(self) -> str:
        return (self.inference_url or f"http://127.0.0.1:{self.inference_port}").rstrip("/")

    @property
    def models_path(self) -> Path:
        return (self.model_store or self.data_path / "models").expanduser().resolve()

    @property
    def files_path(self) -> Path:
        return self.data_path / "files"

    @property
    def artifacts_path(self) -> Path:
        return self.data_path / "artifacts"

    @property
    def jobs_path(self) -> Path:
        """Scratch space of running jobs: spec.json, trainer logs, outputs before they are stored."""
        return self.data_path / "jobs"

    @property
    def broker_path(self) -> Path:
        return self.data_path / "broker"

    @property
    def api_key_file(self) -> Path:
        return self.data_path / "api-key"


def get_settings() -> Settings:
    return Settings()
