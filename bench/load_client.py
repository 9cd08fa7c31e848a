"""bench/load.py's clients: closed-loop phases (N clients, each create -> list -> retrieve in a loop),
an open-loop phase (requests sent at a fixed rate whatever the answers do), and the final check that
every job a client was given is listed and retrievable."""

from __future__ import annotations

import argparse
import asyncio
import math
import ssl
import time
from collections import Counter, defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx

MODEL_ID = "load-bench-model"
OPERATIONS = ("create", "list", "retrieve")
# Requests the open loop has in flight at most; past it, requests wait (and that counts).
OPEN_LOOP_CONNECTIONS = 64


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

    def merge(self, other: Tally) -> Tally:
        """This phase and `other` as one (rounds of the same arm)."""
        merged = Tally(
            rate_limited=self.rate_limited + other.rate_limited, seconds=self.seconds + other.seconds
        )
        for tally in (self, other):
            for operation, values in tally.latencies.items():
                merged.latencies[operation].extend(values)
            merged.errors.update(tally.errors)
            merged.error_samples.extend(tally.error_samples[: 5 - len(merged.error_samples)])
            merged.job_ids.extend(tally.job_ids)
        return merged

    def record_error(self, operation: str, what: str) -> None:
        self.errors[f"{operation}: {what.splitlines()[0][:60]}"] += 1
        sample = f"{operation}: {what[:300]}"
        if len(self.error_samples) < 5 and sample not in self.error_samples:
            self.error_samples.append(sample)


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
        since: float | None = None,
        **kwargs: object,
    ) -> dict | None:
        """One operation, timed (from `since`, when it was due, if given). A 429 is counted apart and
        retried after its Retry-After, unless that is past the phase's end: then the client gives the
        operation up (neither latency nor error)."""
        while True:
            started = since if since is not None else time.perf_counter()
            since = None
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

    async def open_loop(self, rate: float, duration: float, job_ids: list[str]) -> Tally:
        """Requests at `rate` a second for `duration`, create, list and retrieve in turn, each sent
        when it is due whether or not earlier ones were answered. A latency counts from when the
        request was due: a server (or this client) that falls behind shows in it, not in a lower rate.
        """
        tally = Tally()
        known = list(job_ids)  # retrieves ask for jobs made before and during the phase
        body = {"model": MODEL_ID, "training_file": self.training_file, "suffix": "load"}
        async with AsyncExitStack() as stack:
            # Single-connection clients lent out one request at a time: one client's pool of many
            # connections costs CPU that grows with the requests waiting, just when the API falls behind.
            idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
            for _ in range(OPEN_LOOP_CONNECTIONS):
                idle.put_nowait(await stack.enter_async_context(self.client(1)))
            started = time.perf_counter()
            deadline = started + duration
            tasks = []

            async def one(operation: str, due: float, index: int) -> None:
                http = await idle.get()
                try:
                    await send(http, operation, due, index)
                finally:
                    idle.put_nowait(http)

            async def send(http: httpx.AsyncClient, operation: str, due: float, index: int) -> None:
                if operation == "create":
                    made = await self.request(
                        http, tally, deadline, "create", "POST", "/fine_tuning/jobs", since=due, json=body
                    )
                    if made and made.get("id"):
                        tally.job_ids.append(made["id"])
                        known.append(made["id"])
                elif operation == "list":
                    params = {"limit": self.args.list_limit}
                    await self.request(
                        http, tally, deadline, "list", "GET", "/fine_tuning/jobs", since=due, params=params
                    )
                elif known:
                    job_id = known[index % len(known)]
                    path = f"/fine_tuning/jobs/{job_id}"
                    await self.request(http, tally, deadline, "retrieve", "GET", path, since=due)

            for index in range(math.ceil(duration * rate)):
                due = started + index / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                operation = OPERATIONS[index % len(OPERATIONS)]
                tasks.append(asyncio.create_task(one(operation, due, index)))
            if tasks:
                _, unfinished = await asyncio.wait(tasks, timeout=self.args.timeout + 1)
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
            tally.seconds = time.perf_counter() - started
        return tally

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
