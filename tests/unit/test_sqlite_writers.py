"""SQLite's writers queue across threads and processes (api/sqlite_writers.py), so that a writer
takes the file as soon as the one before it is done instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, text

from api.config import Settings
from api.db import make_engine
from api.sqlite_writers import WriterQueue


def _try_in_child(queue: WriterQueue, timeout: float, results: multiprocessing.Queue) -> None:
    got = queue.acquire(timeout)
    if got:
        queue.release()
    results.put(got)


def _in_a_forked_child(queue: WriterQueue, timeout: float) -> bool:
    """The same WriterQueue object, inherited by fork: the child must not share the parent's lock."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_try_in_child, args=(queue, timeout, results))
    child.start()
    got = results.get(timeout=30)
    child.join(30)
    return got


def test_another_process_waits_while_one_writes_and_goes_once_it_is_done(tmp_path: Path) -> None:
    queue = WriterQueue(str(tmp_path / "tunery.db"))
    assert queue.acquire(1.0)
    assert _in_a_forked_child(queue, 0.2) is False  # held here: the child's turn does not come
    queue.release()
    assert _in_a_forked_child(queue, 5.0) is True


def _hold_in_child(queue: WriterQueue, holding, done) -> None:  # type: ignore[no-untyped-def]
    assert queue.acquire(5.0)
    holding.set()
    done.wait(30)
    queue.release()


def test_children_forked_from_one_writer_process_still_take_turns(tmp_path: Path) -> None:
    """Celery's prefork pool: the parent wrote before it forked, so its children inherit its open
    lock file; each must open its own, or their locks would be one and exclude nobody."""
    queue = WriterQueue(str(tmp_path / "tunery.db"))
    assert queue.acquire(1.0)
    queue.release()
    context = multiprocessing.get_context("fork")
    holding, done = context.Event(), context.Event()
    holder = context.Process(target=_hold_in_child, args=(queue, holding, done))
    holder.start()
    try:
        assert holding.wait(30)
        assert _in_a_forked_child(queue, 0.2) is False
    finally:
        done.set()
        holder.join(30)
    assert _in_a_forked_child(queue, 5.0) is True


def test_a_turn_that_does_not_come_in_time_leaves_the_queue_as_it_was(tmp_path: Path) -> None:
    holder = WriterQueue(str(tmp_path / "tunery.db"))  # another engine on the same file
    waiter = WriterQueue(str(tmp_path / "tunery.db"))
    assert holder.acquire(1.0)
    assert waiter.acquire(0.05) is False
    holder.release()
    # The timed-out waiter gave its thread lock back: its next turn comes.
    assert waiter.acquire(1.0)
    waiter.release()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    queue = WriterQueue(str(tmp_path / "tunery.db"))
    inside = 0
    most = 0
    counter = threading.Lock()

    def write() -> None:
        nonlocal inside, most
        for _ in range(50):
            assert queue.acquire(5.0)
            with counter:
                inside += 1
                most = max(most, inside)
            with counter:
                inside -= 1
            queue.release()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


def test_an_in_memory_database_queues_its_threads_only() -> None:
    queue = WriterQueue(":memory:")
    assert queue.acquire(0.1)
    queue.release()


def _queue_is_held(lock_file: Path) -> bool:
    """Whether some writer holds the queue's file lock (a new open file description contends)."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_a_writer_keeps_its_turn_until_its_commit_or_rollback_has_run(tmp_path: Path, ending: str) -> None:
    # Were the turn handed on when SQLAlchemy's commit event fires, just before the COMMIT runs, the
    # next writer's BEGIN IMMEDIATE would meet SQLite's lock still held and sleep in its busy handler.
    engine = make_engine(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'tunery.db'}"))
    lock_file = Path(f"{engine.url.database}-writers.lock")
    seen: dict[str, bool] = {}

    @event.listens_for(engine, "connect")
    def _trace(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        def traced(statement: str) -> None:
            if statement.split()[0] in ("COMMIT", "ROLLBACK"):
                seen[statement.split()[0]] = _queue_is_held(lock_file)

        dbapi_connection.set_trace_callback(traced)

    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            getattr(connection, ending)()
        assert seen == {ending.upper(): True}
        assert not _queue_is_held(lock_file)  # and handed on once it has
    finally:
        engine.dispose()
