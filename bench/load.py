"""Many concurrent API clients creating and listing fine-tuning jobs: throughput, latency per operation,
errors and lost jobs, with the same operation mix at one client (measured first, in the same run) as
the baseline of every ratio.

    python bench/load.py                  # 200 clients for 20 s on a fresh PostgreSQL database + Redis
    python bench/load.py --sqlite         # the embedded default: SQLite + the filesystem broker
    python bench/load.py --clients 50 --duration 10 --requests-per-client 30

Everything runs on loopback and is thrown away afterwards. The script makes a fresh data directory,
imports a tiny base model into its model store (the API only checks that the model directory has a
config.json; nothing trains), applies the migrations with `tunery migrate`, makes a key with
`tunery keys create`, starts `tunery api` (one uvicorn process: the CLI has no --workers) on a free
port, and uploads one training file. On PostgreSQL it creates a database of its own and drops it at
the end; the broker is a private redis-server on a free port (or --redis-url, whose queue keys it
deletes at the end). No worker runs, so every job stays `validating_files`.

Each client loops: create a job -> list the newest page of jobs -> retrieve the job it created, until
--duration is up or it has done --requests-per-client requests. An error is any answer that is not 2xx
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
import math
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from api.models.store import ModelStore  # noqa: E402
from tests.support.processes import stop  # noqa: E402
from tests.support.services import free_port, fresh_database, postgres_server, private_redis  # noqa: E402
from tests.support.tiny_model import jsonl, toy_chat_examples  # noqa: E402  (no torch: plain dicts)

MODEL_ID = "load-bench-model"
OPERATIONS = ("create", "list", "retrieve")


@dataclass
class Tally:
    """What the clients of one phase saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    rate_limited: int = 0
    job_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    def record_error(self, operation: str, what: str) -> None:
        self.errors[f"{operation}: {what.splitlines()[0][:60]}"] += 1
        sample = f"{operation}: {what[:300]}"
        if len(self.error_samples) < 5 and sample not in self.error_samples:
            self.error_samples.append(sample)


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
    if args.clients < 1 or args.duration <= 0 or args.requests_per_client < 3:
        parser.error("--clients >= 1, --duration > 0 and --requests-per-client >= 3")

    # A SIGTERM (a `timeout` around the run) unwinds like Ctrl-C: the API, the private Redis, the
    # database and the data directory are all cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="tunery-load-"))
        if not args.keep:
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        env = base_env(data_dir)
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
        port = args.port or free_port()
        log = data_dir / "api.log"
        api = stack.enter_context(api_process(env | {"TUNERY_API_KEY": key, "PORT": str(port)}, log))
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_healthy(f"http://127.0.0.1:{port}/healthz", api, log)
        training_file = upload_training_file(base_url, key)
        print(
            f"{backend}; tunery api: 1 uvicorn process on 127.0.0.1:{port} (the CLI has no --workers); "
            f"no worker: jobs stay validating_files; "
            f"per-key rate limits {'as configured' if args.rate_limits else 'off'}",
            flush=True,
        )
        print(
            f"each client loops create job -> list {args.list_limit} jobs -> retrieve its job; "
            f"baseline 1 client for {args.baseline_duration:g}s, then {args.clients} clients for "
            f"{args.duration:g}s (at most {args.requests_per_client} requests each)",
            flush=True,
        )
        run = LoadRun(base_url, key, training_file, args)
        baseline = asyncio.run(run.phase(1, args.baseline_duration))
        loaded = asyncio.run(run.phase(args.clients, args.duration))
        print_report(baseline, loaded, args.clients)
        lost, extra, statuses = asyncio.run(run.check_jobs(baseline.job_ids + loaded.job_ids))
        known = len(baseline.job_ids) + len(loaded.job_ids)
        listing = dict(statuses) if statuses else "unknown (no full listing)"
        print(f"jobs created {known}; statuses when listed: {listing}")
        if extra:
            print(f"  {len(extra)} listed job(s) no client got an id for (a create whose answer was lost)")
        for line, count in api_log_exceptions(log).most_common(5):
            print(f"API log: {count} x {line}")
        errors = baseline.error_count + loaded.error_count
        rate_limited = baseline.rate_limited + loaded.rate_limited
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
    return made.stdout.strip().splitlines()[-1]


@contextmanager
def api_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "api"],
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


class LoadRun:
    def __init__(self, base_url: str, key: str, training_file: str, args: argparse.Namespace) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.training_file = training_file
        self.args = args
        self.tls = ssl.create_default_context()

    def client(self, connections: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            timeout=self.args.timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            # Plain http on loopback: one context for all, not a CA bundle loaded per client.
            verify=self.tls,
        )

    async def phase(self, clients: int, duration: float) -> Tally:
        """Clients start requests until `duration` is up; what has no answer `timeout` seconds later
        is cancelled and counted as an error."""
        tally = Tally()
        async with AsyncExitStack() as stack:
            # A client of its own per simulated user, as real users have: one httpx client with a
            # pool of 200 connections spends more CPU choosing a connection than the API serving.
            https = [await stack.enter_async_context(self.client(1)) for _ in range(clients)]
            started = time.perf_counter()
            deadline = started + duration
            tasks = [asyncio.create_task(self.one_client(http, tally, deadline)) for http in https]
            _, unfinished = await asyncio.wait(tasks, timeout=duration + self.args.timeout + 1)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            tally.seconds = time.perf_counter() - started
        return tally

    async def one_client(self, http: httpx.AsyncClient, tally: Tally, deadline: float) -> None:
        done = 0
        body = {"model": MODEL_ID, "training_file": self.training_file, "suffix": "load"}
        while time.perf_counter() < deadline and done + 3 <= self.args.requests_per_client:
            done += 3
            created = await self.request(
                http, tally, deadline, "create", "POST", "/fine_tuning/jobs", json=body
            )
            job_id = created.get("id") if created else None
            if job_id:
                tally.job_ids.append(job_id)
            if time.perf_counter() >= deadline:
                break
            params = {"limit": self.args.list_limit}
            await self.request(http, tally, deadline, "list", "GET", "/fine_tuning/jobs", params=params)
            if job_id and time.perf_counter() < deadline:
                path = f"/fine_tuning/jobs/{job_id}"
                retrieved = await self.request(http, tally, deadline, "retrieve", "GET", path)
                if retrieved and retrieved.get("id") != job_id:
                    tally.record_error("retrieve", f"asked for {job_id}, got {retrieved.get('id')}")

    async def request(
        self,
        http: httpx.AsyncClient,
        tally: Tally,
        deadline: float,
        operation: str,
        method: str,
        path: str,
        **kwargs: object,
    ) -> dict | None:
        """One operation, timed. A 429 is counted apart and retried after its Retry-After, unless that
        is past the phase's end: then the client gives the operation up (neither latency nor error)."""
        while True:
            started = time.perf_counter()
            try:
                answer = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.HTTPError as error:
                tally.record_error(operation, describe(error, self.args.timeout))
                return None
            except asyncio.CancelledError:
                tally.record_error(operation, "no answer by the phase's hard stop")
                raise
            elapsed = time.perf_counter() - started
            if answer.status_code == 429:
                tally.rate_limited += 1
                wait = retry_after(answer)
                if time.perf_counter() + wait >= deadline:
                    await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
                    return None
                await asyncio.sleep(wait)
                continue
            tally.latencies[operation].append(elapsed)
            if not answer.is_success:
                tally.record_error(operation, f"HTTP {answer.status_code} {answer.text}")
                return None
            return answer.json()

    async def check_jobs(self, job_ids: list[str]) -> tuple[dict[str, str], set[str], Counter[str]]:
        """Every id a client got back must be retrievable and listed; returns (lost, unknown, statuses).

        Runs after the load, once the API answers again; a listing that still fails leaves every job
        unverified, and each counts as lost."""
        lost: dict[str, str] = {}
        listed: dict[str, str] = {}
        async with self.client(20) as http:
            if not await self.wait_until_answering(http):
                return (
                    dict.fromkeys(job_ids, "unverified: the API answered no list request"),
                    set(),
                    Counter(),
                )
            after = None
            while True:
                params: dict[str, str | int] = {"limit": 100}
                if after:
                    params["after"] = after
                try:
                    page = (await http.get("/fine_tuning/jobs", params=params)).raise_for_status().json()
                except httpx.HTTPError as error:
                    why = f"unverified: listing all jobs failed ({describe(error, self.args.timeout)})"
                    return dict.fromkeys(job_ids, why), set(), Counter(listed.values())
                for job in page["data"]:
                    if job["id"] in listed:
                        lost.setdefault(job["id"], "listed twice")
                    listed[job["id"]] = job["status"]
                if not page["has_more"]:
                    break
                after = page["last_id"]
            gate = asyncio.Semaphore(20)

            async def retrieve(job_id: str) -> None:
                async with gate:
                    try:
                        answer = await http.get(f"/fine_tuning/jobs/{job_id}")
                    except httpx.HTTPError as error:
                        lost[job_id] = f"retrieve failed: {type(error).__name__} {error}"
                        return
                    if answer.status_code != 200:
                        lost[job_id] = f"retrieve answered {answer.status_code}: {answer.text[:200]}"

            await asyncio.gather(*(retrieve(job_id) for job_id in job_ids))
        for job_id in job_ids:
            if job_id not in listed:
                lost.setdefault(job_id, "missing from the full listing")
        return lost, set(listed) - set(job_ids), Counter(listed.values())

    async def wait_until_answering(self, http: httpx.AsyncClient) -> bool:
        """Requests the clients gave up on may still hold the API's threads: wait (bounded) for a 200."""
        started = time.perf_counter()
        while time.perf_counter() - started < self.args.timeout + 10:
            try:
                answer = await http.get("/fine_tuning/jobs", params={"limit": 1}, timeout=5)
                if answer.status_code == 200:
                    waited = time.perf_counter() - started
                    if waited > 1:
                        print(f"the API took {waited:.0f}s after the load to answer a list request again")
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
        print(f"the API answered no list request for {time.perf_counter() - started:.0f}s after the load")
        return False


def describe(error: httpx.HTTPError, timeout: float) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"{type(error).__name__}: no answer within {timeout:g}s"
    return f"{type(error).__name__}: {error}"


def retry_after(answer: httpx.Response) -> float:
    try:
        return max(float(answer.headers.get("retry-after", "1")), 0.0)
    except ValueError:
        return 1.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


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
    for name, tally in (("1 client", baseline), (f"{clients} clients", loaded)):
        if tally.errors:
            print(f"errors at {name}: {dict(tally.errors.most_common(8))}")
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
