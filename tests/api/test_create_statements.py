"""A job create holds the write transaction (on SQLite, the file's one write lock) for few statements:
every other writer of every process waits that long. Counted, so a change that adds round trips to
the create path shows here rather than only as a lower figure in bench/load.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from tests.conftest import TINY_MODEL

# PostgreSQL: the reads that check the request (GPU pools and their running jobs, the training
# file), the job's INSERT with its enqueued_at, one executemany INSERT of its two events. SQLite: the
# reads run before the write lock is taken (api.db.reads_before_writing), so it covers the two INSERTs.
MOST_STATEMENTS_IN_THE_WRITE = {"postgres": 6, "sqlite": 2}


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_a_create_writes_in_few_statements(client: TestClient, training_file: str, backend: str) -> None:
    with statements() as seen:
        response = client.post(
            "/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file}
        )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["organization_id"]
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert [w.split("(")[0].split()[-1] for w in writes] == ["fine_tuning_jobs", "fine_tuning_job_events"]
    if backend == "sqlite":
        # From the write transaction's BEGIN IMMEDIATE to its end.
        in_write = seen[max(i for i, s in enumerate(seen) if s.strip().upper() == "BEGIN IMMEDIATE") + 1 :]
    else:
        # Everything after the caller's own short read session.
        in_write = seen[seen.index(next(s for s in seen if "api_keys" in s)) + 1 :]
        in_write = [s for s in in_write if not s.strip().upper().startswith("BEGIN")]
    assert len(in_write) <= MOST_STATEMENTS_IN_THE_WRITE[backend], in_write
    # Nothing was lost by batching: both events, in order.
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert [e["message"] for e in reversed(events)][:2] == [
        f"Created fine-tuning job: {job['id']}",
        f"Validating training file: {training_file}",
    ]


def test_on_postgres_a_create_reads_its_key_in_its_own_transaction(
    client: TestClient, training_file: str, backend: str
) -> None:
    """One connection from the pool, one ping, one transaction: the key's read comes first in the
    create's transaction. On SQLite that transaction holds the write lock, so the key is read apart."""
    from sqlalchemy.pool import Pool

    checkouts: list[object] = []

    def checked_out(_dbapi, _record, _proxy):  # type: ignore[no-untyped-def]
        checkouts.append(_record)

    body = {"model": TINY_MODEL, "training_file": training_file}
    assert client.post("/v1/fine_tuning/jobs", json=body).status_code == 200  # warm
    event.listen(Pool, "checkout", checked_out)
    try:
        assert client.post("/v1/fine_tuning/jobs", json=body).status_code == 200
    finally:
        event.remove(Pool, "checkout", checked_out)
    # SQLite: the key's read, the checks' read (api.db.reads_before_writing), the write.
    assert len(checkouts) == {"postgres": 1, "sqlite": 3}[backend], checkouts
