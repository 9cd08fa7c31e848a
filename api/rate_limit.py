"""Per-key rate limits on the calls that cost the service the most (uploads, job creation).

A fixed one-minute window per key and kind of call. With Redis (production, several API
replicas) the counters live in Redis so every replica counts the same requests; the embedded
default has one API process and counts in memory.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from api.config import Settings

WINDOW_SECONDS = 60


class Limiter(Protocol):
    def hit(self, bucket: str, limit: int) -> int | None:
        """Count a request; the seconds to wait when it is over `limit` per window, else None."""


class MemoryLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit(self, bucket: str, limit: int) -> int | None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            # Forget past windows as we go, so memory stays at one counter per active key.
            for stale in [key for key in self._counts if key[1] < window]:
                del self._counts[stale]
            count = self._counts.get((bucket, window), 0) + 1
            self._counts[(bucket, window)] = count
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
    return MemoryLimiter()
