"""Many concurrent API clients creating and listing fine-tuning jobs: throughput, latency per operation,
errors and lost jobs, against two baselines measured in the same run: the same operation mix at one
client, and a minimal FastAPI app (bench/baseline_api.py) served the same way over the same database
that runs the same SQL with no auth, validation or events. Then an open loop at a fixed offered rate
gives p50 and p99 per operation.

    python bench/load.py                  # 200 clients, 2 rounds of 10 s each arm, PostgreSQL + Redis
    python bench/load.py --sqlite         # the embedded default: SQLite + the filesystem broker
    python bench/load.py --workers 1      # one API process (TUNERY_API_WORKERS; default: the cores)
    python bench/load.py --rate 50 --open-duration 20 --clients 50 --duration 5 --rounds 3

Everything runs on loopback and is thrown away afterwards. The script makes a fresh data directory,
imports a tiny base model into its model store (the API only checks that the model directory has a
config.json; nothing trains), applies the migrations with `tunery migrate`, makes a key with
`tunery keys create`, starts `tunery api` and the baseline app on free ports (both with --workers
uvicorn processes), and uploads one training file. On PostgreSQL it creates a database of its own
and drops it at the end; the broker is a private redis-server on a free port (or --redis-url, whose
queue keys it deletes at the end). No worker runs, so every job stays `validating_files`.

Each client (an httpx client of its own, as each user has) loops: create a job -> list the newest page
of jobs -> retrieve the job it created, until --duration is up or it has done --requests-per-client
requests. The Tunery and baseline arms alternate for --rounds rounds. The open loop sends create,
list and retrieve in turn at --rate requests/s for --open-duration seconds, each when it is due
whatever the earlier ones do, and times each from when it was due. An error is any answer that is not 2xx
(and not 429) or a transport error. All clients share one key, so the API's per-key rate limits are
off unless --rate-limits; a 429 is counted apart and retried after its Retry-After (a client whose
wait would pass the end of the phase stops there).
Afterwards every job id a client got back must be retrievable and must appear when listing all jobs
page by page; each that is not counts as lost. When the API does not answer the final listing at
all, the jobs are reported as unverified instead. Exits 1 on any error, lost or unverified job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from api.config import Settings  # noqa: E402
from api.models.store import ModelStore  # noqa: E402
from bench.load_client import MODEL_ID, OPERATIONS, LoadRun, Tally, percentile  # noqa: E402
from tests.support.processes import stop  # noqa: E402
from tests.support.services import free_port, fresh_database, postgres_server, private_redis  # noqa: E402
from tests.support.tiny_model import jsonl, toy_chat_examples  # noqa: E402  (no torch: plain dicts)

BASELINE_PROJECT = "load-baseline"
# The open loop's goals (issue 15): p99 per operation, in ms.
P99_GOAL_MS = {"create": 100.0, "list": 50.0, "retrieve": 50.0}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load at --clients")
    parser.add_argument(
        "--requests-per-client",
        type=int,
        default=1000,
        help="a client stops after this many requests even before --duration is up",
    )
    parser.add_argument(
        "--baseline-duration", type=float, default=5.0, help="seconds of the 1-client baseline"
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="SQLite + filesystem broker (the default setup)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of Tunery then the baseline app at --clients"
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="requests/s of the open-loop phase (0: no open loop)"
    )
    parser.add_argument("--open-duration", type=float, default=10.0, help="seconds of the open-loop phase")
    parser.add_argument(
        "--workers", type=int, help="TUNERY_API_WORKERS of both servers (default: the number of cores)"
    )
    parser.add_argument("--port", type=int, help="port of the API (default: a free one)")
    parser.add_argument("--list-limit", type=int, default=20, help="page size of a client's list request")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds without an answer before a request is an error"
    )
    parser.add_argument(
        "--redis-url",
        help="an existing Redis database to use as the broker (default: a private redis-server)",
    )
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="keep the API's per-key rate limits (default: off, since every client shares one key)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory (with the API's log)")
    args = parser.parse_args()
    if args.clients < 1 or args.duration <= 0 or args.requests_per_client < 3 or args.rounds < 1:
        parser.error("--clients >= 1, --duration > 0, --requests-per-client >= 3 and --rounds >= 1")

    # A SIGTERM (a `timeout` around the run) unwinds like Ctrl-C: the API, the private Redis, the
    # database and the data directory are all cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="tunery-load-"))
        if not args.keep:
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        env = base_env(data_dir)
        if args.workers:
            env["TUNERY_API_WORKERS"] = str(args.workers)
        if not args.rate_limits:
            env |= {"TUNERY_RATE_LIMIT_JOBS_PER_MINUTE": "0", "TUNERY_RATE_LIMIT_UPLOADS_PER_MINUTE": "0"}
        if args.sqlite:
            backend = "SQLite + filesystem broker"
        else:
            admin_url = stack.enter_context(postgres_server())
            env["TUNERY_DATABASE_URL"] = stack.enter_context(fresh_database(admin_url, prefix="tunery_load"))
            env["TUNERY_BROKER_URL"] = stack.enter_context(broker(args.redis_url))
            backend = "PostgreSQL + Redis"
        key = prepare(data_dir, env)
        log = data_dir / "api.log"
        port, baseline_port = args.port or free_port(), free_port()
        api = stack.enter_context(
            server(["api.cli", "api"], env | {"TUNERY_API_KEY": key, "PORT": str(port)}, log)
        )
        baseline_log = data_dir / "baseline-api.log"
        baseline_env = env | {"PORT": str(baseline_port), "BENCH_PROJECT": BASELINE_PROJECT}
        plain_api = stack.enter_context(server(["bench.baseline_api"], baseline_env, baseline_log))
        wait_healthy(f"http://127.0.0.1:{port}/healthz", api, log)
        wait_healthy(f"http://127.0.0.1:{baseline_port}/docs", plain_api, baseline_log)
        base_url = f"http://127.0.0.1:{port}/v1"
        training_file = upload_training_file(base_url, key)
        workers = env.get("TUNERY_API_WORKERS") or str(Settings().api_worker_count)
        print(
            f"{backend}; tunery api and the baseline app (bench/baseline_api.py): {workers} uvicorn "
            f"process(es) each (TUNERY_API_WORKERS); no worker: jobs stay validating_files; "
            f"per-key rate limits {'as configured' if args.rate_limits else 'off'}",
            flush=True,
        )
        print(
            f"each client loops create job -> list {args.list_limit} jobs -> retrieve its job; "
            f"1 client for {args.baseline_duration:g}s, then {args.rounds} round(s) of {args.clients} "
            f"clients for {args.duration:g}s on Tunery, then on the baseline app (at most "
            f"{args.requests_per_client} requests each); then {args.rate:g} requests/s open loop for "
            f"{args.open_duration:g}s on each",
            flush=True,
        )
        run = LoadRun(base_url, key, training_file, args)
        plain = LoadRun(f"http://127.0.0.1:{baseline_port}/v1", key, training_file, args)
        one = asyncio.run(run.phase(1, args.baseline_duration))
        loaded, plain_loaded = Tally(), Tally()
        for round_number in range(1, args.rounds + 1):  # alternating, so drift touches both arms
            ours = asyncio.run(run.phase(args.clients, args.duration))
            theirs = asyncio.run(plain.phase(args.clients, args.duration))
            loaded, plain_loaded = loaded.merge(ours), plain_loaded.merge(theirs)
            print(
                f"round {round_number}: Tunery {ours.throughput():.1f} req/s, baseline app "
                f"{theirs.throughput():.1f} req/s = {ours.throughput() / theirs.throughput():.2f}x",
                flush=True,
            )
        print_report(one, loaded, args.clients)
        print(
            f"throughput at {args.clients} clients: Tunery {loaded.throughput():.1f} req/s, baseline app "
            f"{plain_loaded.throughput():.1f} req/s = {loaded.throughput() / plain_loaded.throughput():.2f}x "
            "the baseline app (goal >= 0.5x)"
        )
        arms = [one, loaded, plain_loaded]
        if args.rate > 0:
            known = one.job_ids + loaded.job_ids
            opened = asyncio.run(run.open_loop(args.rate, args.open_duration, known))
            plain_opened = asyncio.run(plain.open_loop(args.rate, args.open_duration, plain_loaded.job_ids))
            print_open_loop(opened, plain_opened, args.rate)
            arms += [opened, plain_opened]
            loaded = loaded.merge(opened)  # its jobs are checked below too
        print_errors({"Tunery": loaded, "baseline app": plain_loaded})
        lost, extra, statuses = asyncio.run(run.check_jobs(one.job_ids + loaded.job_ids))
        known_count = len(one.job_ids) + len(loaded.job_ids)
        listing = dict(statuses) if statuses else "unknown (no full listing)"
        print(f"jobs created {known_count}; statuses when listed: {listing}")
        if extra:
            print(f"  {len(extra)} listed job(s) no client got an id for (a create whose answer was lost)")
        for name, path in (("API", log), ("baseline app", baseline_log)):
            for line, count in api_log_exceptions(path).most_common(5):
                print(f"{name} log: {count} x {line}")
        errors = sum(arm.error_count for arm in arms)
        rate_limited = sum(arm.rate_limited for arm in arms)
        unverified = {job_id: why for job_id, why in lost.items() if why.startswith("unverified")}
        lost = {job_id: why for job_id, why in lost.items() if job_id not in unverified}
        print(
            f"errors {errors}; rate limited (429) {rate_limited}; lost jobs {len(lost)}; "
            f"unverified jobs {len(unverified)}"
        )
        for job_id, why in [*list(lost.items())[:5], *list(unverified.items())[:1]]:
            print(f"  {job_id}: {why}")
        if args.keep:
            print(f"data directory kept: {data_dir}")
        return 1 if errors or lost or unverified else 0


def base_env(data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TUNERY_")}
    env.update(TUNERY_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    return env


@contextmanager
def broker(redis_url: str | None) -> Iterator[str]:
    """A private redis-server: the test suite flushes Redis databases 1-15 of the shared one at random,
    and the messages of thousands of jobs do not belong in anyone else's queues either."""
    import redis

    if redis_url:
        try:
            yield redis_url
        finally:
            client = redis.Redis.from_url(redis_url)
            names = [*client.scan_iter("tunery.*"), *client.scan_iter("_kombu.binding.tunery.*")]
            if names:
                client.delete(*names)
            client.close()
        return
    with private_redis("redis-server is not installed: install it, pass --redis-url, or use --sqlite") as url:
        yield url


def prepare(data_dir: Path, env: dict[str, str]) -> str:
    """Model store, migrations and a key, each through the service's own code; returns the key."""
    source = data_dir / "model-source"
    source.mkdir()
    # Creating a job checks only that the base model's directory holds a config.json.
    (source / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    ModelStore(data_dir / "models").import_directory(source, MODEL_ID)
    tunery = [sys.executable, "-m", "api.cli"]
    subprocess.run([*tunery, "migrate"], env=env, cwd=REPO_ROOT, check=True, capture_output=True)
    made = subprocess.run(
        [*tunery, "keys", "create"], env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True
    )
    # The baseline app's jobs go to a project of their own (it needs no key: it checks none).
    subprocess.run(
        [*tunery, "keys", "create", "--project", BASELINE_PROJECT],
        env=env,
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    return made.stdout.strip().splitlines()[-1]


@contextmanager
def server(module: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`python -m MODULE ...` in the repository, its output in `log`, stopped at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *module],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            stop(process)


def wait_healthy(url: str, api: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit(
                f"the API exited with {api.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the API did not answer within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def upload_training_file(base_url: str, key: str) -> str:
    answer = httpx.post(
        f"{base_url}/files",
        headers={"Authorization": f"Bearer {key}"},
        data={"purpose": "fine-tune"},
        files={"file": ("train.jsonl", jsonl(toy_chat_examples(10)), "application/jsonl")},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["id"]


def print_report(baseline: Tally, loaded: Tally, clients: int) -> None:
    header = (
        f"{'operation':<10} {'n (1)':>7} {'p50 ms (1)':>11} {'p99 ms (1)':>11} {f'n ({clients})':>9} "
        f"{f'p50 ms ({clients})':>13} {f'p99 ms ({clients})':>13} {'p50 ratio':>10} {'p99 ratio':>10}"
    )
    print(header)
    print("-" * len(header))
    for operation in OPERATIONS:
        one, many = baseline.latencies[operation], loaded.latencies[operation]
        p50_1, p99_1 = percentile(one, 0.5) * 1000, percentile(one, 0.99) * 1000
        p50_n, p99_n = percentile(many, 0.5) * 1000, percentile(many, 0.99) * 1000
        print(
            f"{operation:<10} {len(one):>7} {p50_1:>11.1f} {p99_1:>11.1f} {len(many):>9} "
            f"{p50_n:>13.1f} {p99_n:>13.1f} {p50_n / p50_1:>9.1f}x {p99_n / p99_1:>9.1f}x"
        )
    ratio = loaded.throughput() / baseline.throughput()
    print(
        f"throughput: 1 client {baseline.throughput():.1f} req/s; {clients} clients "
        f"{loaded.throughput():.1f} req/s = {ratio:.2f}x the 1-client baseline"
    )


def print_open_loop(ours: Tally, theirs: Tally, rate: float) -> None:
    """p50/p99 per operation at a fixed offered rate, against the goals, with the baseline app's."""
    print(f"open loop at {rate:g} requests/s offered (latency from when each request was due):")
    header = (
        f"{'operation':<10} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'goal p99':>9} {'met':>4} "
        f"{'baseline p50':>13} {'baseline p99':>13}"
    )
    print(header)
    print("-" * len(header))
    for operation in OPERATIONS:
        mine, plain = ours.latencies[operation], theirs.latencies[operation]
        p99 = percentile(mine, 0.99) * 1000
        goal = P99_GOAL_MS[operation]
        print(
            f"{operation:<10} {len(mine):>6} {percentile(mine, 0.5) * 1000:>8.1f} {p99:>8.1f} "
            f"{goal:>8.0f}  {'yes' if p99 < goal else 'no':>4} {percentile(plain, 0.5) * 1000:>13.1f} "
            f"{percentile(plain, 0.99) * 1000:>13.1f}"
        )
    print(f"served {ours.throughput():.1f} req/s (baseline app {theirs.throughput():.1f})")


def print_errors(arms: dict[str, Tally]) -> None:
    for name, tally in arms.items():
        if tally.errors:
            print(f"errors on {name}: {dict(tally.errors.most_common(8))}")
            for sample in tally.error_samples:
                print(f"  e.g. {sample}")


def api_log_exceptions(log: Path) -> Counter[str]:
    """The last line of every traceback in the API's log (the exception and its message)."""
    found: Counter[str] = Counter()
    in_traceback = False
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and line and not line.startswith((" ", "\t")):
            found[line[:200]] += 1
            in_traceback = False
    return found


if __name__ == "__main__":
    sys.exit(main())
