"""The lease a worker holds on the job it trains (or the eval run it grades): at most one worker
works on a row at a time.

Taken, renewed and released inside the caller's transaction on the locked row. A worker that
dies stops renewing; once `lease_expires_at` passes, the row may be claimed by another worker.
"""

from __future__ import annotations

from typing import Protocol

from api import clock


class Leased(Protocol):
    """A row a worker leases: a fine-tuning job, an eval run."""

    lease_owner: str | None
    lease_expires_at: int | None


def is_held_by_other(job: Leased, owner: str) -> bool:
    return (
        job.lease_owner is not None
        and job.lease_owner != owner
        and job.lease_expires_at is not None
        and job.lease_expires_at > clock.now()
    )


def seconds_left(job: Leased) -> int:
    return max(0, (job.lease_expires_at or 0) - clock.now())


def take(job: Leased, owner: str, lease_seconds: int) -> None:
    job.lease_owner = owner
    job.lease_expires_at = clock.now() + lease_seconds


def renew(job: Leased, owner: str, lease_seconds: int) -> bool:
    """Extend the lease; False when it is no longer ours (it expired and another worker took it)."""
    if job.lease_owner != owner:
        return False
    job.lease_expires_at = clock.now() + lease_seconds
    return True


def release(job: Leased, owner: str) -> None:
    if job.lease_owner == owner:
        job.lease_owner = None
        job.lease_expires_at = None
