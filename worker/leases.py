"""The lease a worker holds on the job it trains: at most one worker trains a job at a time.

Taken, renewed and released inside the caller's transaction on the locked job row. A worker that
dies stops renewing; once `lease_expires_at` passes, the job may be claimed by another worker.
"""

from __future__ import annotations

from api import clock
from api.tables import FineTuningJob


def is_held_by_other(job: FineTuningJob, owner: str) -> bool:
    return (
        job.lease_owner is not None
        and job.lease_owner != owner
        and job.lease_expires_at is not None
        and job.lease_expires_at > clock.now()
    )


def seconds_left(job: FineTuningJob) -> int:
    return max(0, (job.lease_expires_at or 0) - clock.now())


def take(job: FineTuningJob, owner: str, lease_seconds: int) -> None:
    job.lease_owner = owner
    job.lease_expires_at = clock.now() + lease_seconds


def renew(job: FineTuningJob, owner: str, lease_seconds: int) -> bool:
    """Extend the lease; False when it is no longer ours (it expired and another worker took it)."""
    if job.lease_owner != owner:
        return False
    job.lease_expires_at = clock.now() + lease_seconds
    return True


def release(job: FineTuningJob, owner: str) -> None:
    if job.lease_owner == owner:
        job.lease_owner = None
        job.lease_expires_at = None
