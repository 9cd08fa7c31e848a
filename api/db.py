"""Engine and sessions. A request, or a task, commits once at its end; services never commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from api.config import Settings
from api.sqlite_writers import WriterQueue


def make_engine(settings: Settings, *, serves_requests: bool = False) -> Engine:
    """`serves_requests`: the API's engine, whose every statement is bounded by DB_TIMEOUT_SECONDS
    (a request must answer, if only 503); a worker's long statements are not cut short."""
    url = settings.sqlalchemy_url
    timeout = settings.db_timeout_seconds
    # Sized like Postgres' pool: SQLAlchemy's own SQLite default (5 + 10) is smaller than the API's
    # slots (api/deps.py), and requests holding a slot then waited for a connection as well.
    pool = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": timeout,
    }
    if url.startswith("sqlite"):
        settings.data_path.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": timeout}, poolclass=QueuePool, **pool
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # The API and the worker are separate processes writing one file: WAL lets readers
            # go on while a writer commits, and foreign keys are off in SQLite unless asked for.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cursor.close()
            # We issue BEGIN ourselves (below) instead of the driver's lazy deferred one.
            dbapi_connection.isolation_level = None

        # Writers queue here (api/sqlite_writers.py), woken as soon as the one before is done,
        # instead of polling in SQLite's busy handler, which sleeps up to 100 ms between tries.
        writers = WriterQueue(engine.url.database)

        @event.listens_for(engine, "begin")
        def _begin(connection):  # type: ignore[no-untyped-def]
            # A deferred transaction that reads, then writes after another process committed,
            # fails at once with SQLITE_BUSY (no waiting helps it). Units of work that may write
            # take the write lock at BEGIN, so they queue up instead; reading ones do not, and
            # read alongside under WAL.
            if not connection.get_execution_options().get(WRITES, True):
                connection.exec_driver_sql("BEGIN")
                return
            if not writers.acquire(timeout=timeout):
                locked = sqlite3.OperationalError("database is locked (by other writers)")
                raise OperationalError("BEGIN IMMEDIATE", None, locked)
            connection.info[_HOLDS_WRITERS] = True
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(connection.info)
                raise

        def _release(info: dict) -> None:
            if info.pop(_HOLDS_WRITERS, False):
                writers.release()

        # A writer's turn ends once its COMMIT (or ROLLBACK) has run, not when SQLAlchemy's commit
        # event fires, just before it: the next writer's BEGIN IMMEDIATE would meet the lock still
        # held and sleep in SQLite's busy handler. And should a transaction end without those, its
        # connection's return to the pool or its invalidation ends the turn: a writer's turn can
        # never outlive its connection's use.
        dialect = engine.dialect  # the engine's own instance
        for name in ("do_commit", "do_rollback"):
            setattr(dialect, name, _then_release(getattr(dialect, name), _release))
        event.listen(engine.pool, "checkin", lambda _dbapi, record: _release(record.info if record else {}))
        event.listen(engine.pool, "invalidate", lambda _dbapi, record, _exc: _release(record.info))
        return engine
    # A statement waiting on a lock, or running long, is cancelled (QueryCanceled) at the timeout.
    connect_args = {"options": f"-c statement_timeout={int(timeout * 1000)}"} if serves_requests else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **pool)


def connections_past_the_server_limit(settings: Settings) -> str | None:
    """A warning when the API's workers may open more connections than PostgreSQL accepts: those
    past the limit would fail to connect under load instead of waiting their turn."""
    if not settings.sqlalchemy_url.startswith("postgresql"):
        return None
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            limit = int(connection.exec_driver_sql("SHOW max_connections").scalar_one())
    finally:
        engine.dispose()
    per_worker = settings.db_pool_size + settings.db_max_overflow
    wanted = settings.api_worker_count * per_worker
    if wanted <= limit:
        return None
    return (
        f"{settings.api_worker_count} API workers x {per_worker} connections (TUNERY_DB_POOL_SIZE + "
        f"TUNERY_DB_MAX_OVERFLOW) = {wanted}, more than PostgreSQL's max_connections ({limit}) and "
        "before any worker's: lower TUNERY_API_WORKERS or the pool, or raise max_connections"
    )


def database_timed_out(error: BaseException) -> bool:
    """A wait bounded by DB_TIMEOUT_SECONDS ran out: the pool's, SQLite's busy timeout, Postgres'
    statement_timeout."""
    if isinstance(error, SQLAlchemyTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if getattr(error.orig, "sqlstate", None) == "57014":  # query_canceled: statement_timeout
        return True
    return isinstance(error.orig, sqlite3.OperationalError) and "locked" in str(error.orig)


def busy_reason(error: BaseException) -> str:
    if isinstance(error, SQLAlchemyTimeout):
        return "no database connection came free in time"
    if isinstance(getattr(error, "orig", None), sqlite3.OperationalError):
        return "the database stayed locked by other writers"
    return "a database statement ran past TUNERY_DB_TIMEOUT_SECONDS"


def make_sessionmaker(engine: Engine, settings: Settings | None = None) -> sessionmaker[Session]:
    """Sessions on `engine`; `settings` rides along in session.info for work queued after a commit
    by code that has only the session (a job's webhook deliveries, rung from its state change)."""
    info = {SETTINGS: settings} if settings is not None else {}
    return sessionmaker(bind=engine, expire_on_commit=False, info=info)


def settings_of(session: Session) -> Settings | None:
    return session.info.get(SETTINGS)


WRITES = "tunery_writes"
SETTINGS = "tunery_settings"
_HOLDS_WRITERS = "tunery_holds_writers"


def _then_release(end: Callable[[Any], None], release: Callable[[dict], None]) -> Callable[[Any], None]:
    """A dialect's do_commit or do_rollback that ends the writer's turn once the statement has run;
    it is handed the pool's proxied connection, whose `info` is the one `_begin` marked."""

    def end_then_release(connection: Any) -> None:
        try:
            end(connection)
        finally:
            try:
                info = connection.info
            except NotImplementedError:  # the engine's first connect hands an ad-hoc wrapper
                info = {}
            release(info)

    return end_then_release


_AFTER_COMMIT = "tunery_after_commit"
_ENDED = "tunery_ended"


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the unit of work commits (never if it rolls back).

    For what must follow the commit and cannot be undone with it: ringing the queue's doorbell for a
    job (a worker must find the row it names), removing the bytes of a deleted file. Services call
    this; the one place that commits runs the actions, in order.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


def end_reads(session: Session) -> None:
    """End the transaction a request's reads began, before it calls the object store (a network
    call no transaction may wait on). The session stays usable: a later query begins anew, and
    the actions queued with after_commit still run when its unit of work ends."""
    if session.in_transaction():
        session.commit()


@lru_cache(maxsize=16)
def _reading(engine: Engine) -> Engine:
    """The engine whose connections promise only reads (on SQLite: BEGIN, not BEGIN IMMEDIATE)."""
    return engine.execution_options(**{WRITES: False})


@contextmanager
def reads_before_writing(session: Session) -> Iterator[Session]:
    """For a unit of work that checks (reads) before it writes: the session to check in.

    On SQLite a writing session holds the file's one write lock from its BEGIN, and every writer of
    every process waits for it; so the checks run in a read transaction of their own, and `session`
    takes the lock only for the writes. PostgreSQL locks rows, not the database: there the checks
    run in `session` itself, which saves a connection checkout and its round trips. Rows read here
    are detached once it ends (fine for checks; attributes already loaded stay readable).
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite" or session.in_transaction():
        yield session
        return
    reads = Session(bind=_reading(bind), expire_on_commit=False)
    try:
        yield reads
        reads.commit()
    except BaseException:
        reads.rollback()
        raise
    finally:
        reads.close()


@contextmanager
def session_scope(factory: sessionmaker[Session], *, writes: bool = True) -> Iterator[Session]:
    """One unit of work: commit when the block ends well, roll back when it raises.

    `writes=False` promises only reads (on SQLite it then takes no write lock).
    """
    session = open_session(factory, writes=writes)
    try:
        yield session
    except BaseException:
        end_session(session, failed=True)
        raise
    end_session(session, failed=False)


def open_session(factory: sessionmaker[Session], *, writes: bool = True) -> Session:
    """The start of a unit of work (session_scope's, or a request's). No I/O: the connection is
    taken at the first query, so a request holds none while it waits for anything else (its
    caller's own short session, an upload's check)."""
    return factory() if writes else factory(bind=_reading(factory.kw["bind"]))


def session_ended(session: Session) -> bool:
    """Whether end_session already ended this unit of work (api/one_hop.py ends a request's in the
    endpoint's own threadpool step)."""
    return bool(session.info.get(_ENDED))


def end_session(session: Session, *, failed: bool) -> None:
    """The end of a unit of work: commit (roll back when it failed, or when the commit does), close,
    then run what waited for the commit (after_commit), in order."""
    session.info[_ENDED] = True
    try:
        if failed:
            session.rollback()
        else:
            try:
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        actions = session.info.pop(_AFTER_COMMIT, [])
        session.close()
    if not failed:
        for action in actions:
            action()
