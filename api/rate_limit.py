"""Per-key rate limits on the calls that cost the service the most (uploads, job creation).

A fixed one-minute window per key and kind of call. Every API process must count the same
requests: with Redis (production, several API hosts) the counters live in Redis; otherwise in a small
SQLite file in the data directory, which all the API's worker processes on this host share
(TUNERY_API_WORKERS). Counting in each process's memory would let N workers admit N times the limit.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from api.config import Settings

WINDOW_SECONDS = 60


class Limiter(Protocol):
    def hit(self, bucket: str, limit: int) -> int | None:
        """Count a request; the seconds to wait when it is over `limit` per window, else None."""


class FileLimiter:
    """Counters in a SQLite file of their own (not the service's database: no migration, and no
    write lock shared with the requests)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Autocommit: each statement below is its own atomic transaction across processes.
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Counters lost to a power cut only let a few more requests through: no fsync per hit.
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS hits (bucket TEXT NOT NULL, window INTEGER NOT NULL, "
            "count INTEGER NOT NULL, PRIMARY KEY (bucket, window))"
        )
        self._swept_window = -1

    def hit(self, bucket: str, limit: int) -> int | None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            if window != self._swept_window:
                # Forget past windows as they pass, so the file stays at one row per active key.
                self._db.execute("DELETE FROM hits WHERE window < ?", (window,))
                self._swept_window = window
            (count,) = self._db.execute(
                "INSERT INTO hits VALUES (?, ?, 1) ON CONFLICT (bucket, window) "
                "DO UPDATE SET count = count + 1 RETURNING count",
                (bucket, window),
            ).fetchone()
        return _retry_after(now, window) if count > limit else None


class RedisLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url)

    def hit(self, bucket: str, limit: int) -> int | None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"tunery:ratelimit:{bucket}:{window}"
        pipeline = self._client.pipeline()
        pipeline.incr(key)
        pipeline.expire(key, WINDOW_SECONDS * 2)
        count, _ = pipeline.execute()
        return _retry_after(now, window) if int(count) > limit else None


def _retry_after(now: float, window: int) -> int:
    return max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)


def make_limiter(settings: Settings) -> Limiter:
    if settings.broker_url and settings.broker_url.startswith("redis"):
        return RedisLimiter(settings.broker_url)
    return FileLimiter(settings.data_path / "rate-limits.db")
