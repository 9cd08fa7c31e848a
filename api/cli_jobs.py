"""`tunery jobs list` and `tunery jobs watch JOB_ID`: the API's jobs seen from a terminal, over HTTP,
so they work against a remote server (--base-url, --api-key) as well as the local one."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

import httpx

from api.config import Settings

TERMINAL = ("succeeded", "failed", "cancelled")


def add_commands(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="fine-tuning jobs, over the API").add_subparsers(
        title="jobs commands"
    )
    listing = jobs.add_parser("list", help="the newest jobs: id, status, progress, model")
    listing.add_argument("--limit", type=int, default=20)
    _connection_flags(listing)
    listing.set_defaults(run=cmd_jobs_list)
    watch = jobs.add_parser("watch", help="a job's progress until it ends (exit 0 only if it succeeded)")
    watch.add_argument("job_id")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    _connection_flags(watch)
    watch.set_defaults(run=cmd_jobs_watch)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=None,
        help="the API's /v1 URL (default: TUNERY_BASE_URL, OPENAI_BASE_URL, or TUNERY_HOST:PORT)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="default: TUNERY_API_KEY, OPENAI_API_KEY, or the key `tunery serve` keeps in DATA_DIR/api-key",
    )


def api_client(args: argparse.Namespace) -> httpx.Client:
    settings = Settings()
    base_url = (
        args.base_url
        or os.environ.get("TUNERY_BASE_URL")
        or os.environ.get("OPENAI_BASE_URL")
        or f"http://{settings.host}:{settings.port}/v1"
    )
    key = args.api_key or settings.api_key or os.environ.get("OPENAI_API_KEY")
    if not key and settings.api_key_file.is_file():
        key = settings.api_key_file.read_text().strip()
    if not key:
        raise SystemExit("tunery: no API key: give --api-key or set TUNERY_API_KEY")
    return httpx.Client(
        base_url=base_url.rstrip("/") + "/", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params)
    if answer.status_code != 200:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text[:500]
        raise SystemExit(f"tunery: {answer.status_code} from {answer.request.url}: {message}")
    return answer.json()


def newest_progress(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    """The newest metrics event's data (step, total_steps, train_loss, ...), if the job has one."""
    events = _get(client, f"fine_tuning/jobs/{job_id}/events", limit=100)["data"]
    return next((e["data"] for e in events if e.get("type") == "metrics" and e.get("data")), None)


def progress_bar(step: int, total: int, loss: float | None, remaining: int | None, width: int = 30) -> str:
    done = int(width * step / total) if total else 0
    line = f"[{'#' * done}{'.' * (width - done)}] step {step}/{total}"
    if loss is not None:
        line += f"  loss {loss:.4f}"
    if remaining is not None:
        minutes, seconds = divmod(max(remaining, 0), 60)
        line += f"  {minutes}:{seconds:02d} left"
    return line


def cmd_jobs_list(args: argparse.Namespace) -> None:
    with api_client(args) as client:
        jobs = _get(client, "fine_tuning/jobs", limit=args.limit)["data"]
        print(f"{'ID':<32} {'STATUS':<17} {'PROGRESS':<12} {'BASE MODEL':<24} FINE-TUNED MODEL")
        for job in jobs:
            progress = ""
            if job["status"] in ("running", "paused"):
                latest = newest_progress(client, job["id"])
                progress = f"{latest['step']}/{latest['total_steps']}" if latest else ""
            print(
                f"{job['id']:<32} {job['status']:<17} {progress:<12} {job['model']:<24} "
                f"{job.get('fine_tuned_model') or ''}"
            )


def cmd_jobs_watch(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    live = out.isatty()
    shown = ""
    with api_client(args) as client:
        while True:
            job = _get(client, f"fine_tuning/jobs/{args.job_id}")
            latest = newest_progress(client, job["id"])
            if latest:
                remaining = (
                    job["estimated_finish"] - int(time.time()) if job.get("estimated_finish") else None
                )
                line = progress_bar(
                    latest["step"], latest["total_steps"], latest.get("train_loss"), remaining
                )
            else:
                line = f"{job['status']}..."
            if job["status"] in ("paused", "queued") and latest:
                line += f"  ({job['status']})"
            if line != shown:
                # On a terminal the bar redraws in place; in a log, one line per change.
                out.write(("\r\033[K" + line) if live else line + "\n")
                out.flush()
                shown = line
            if job["status"] in TERMINAL:
                break
            time.sleep(args.interval)
    if live:
        out.write("\n")
    if job["status"] == "succeeded":
        print(f"succeeded: {job['fine_tuned_model']}", file=out)
        return 0
    if job["status"] == "failed":
        error = job.get("error") or {}
        print(f"failed: {error.get('message') or 'no error recorded'} ({error.get('code')})", file=out)
        return 1
    print("cancelled", file=out)
    return 1
