"""What becomes of a job once its trainer exits: a pure function of the row's status then and of how
the trainer ended, so that every combination can be read in one table (and is tested as one)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from api.fine_tuning.status import CANCELLED, PAUSED, QUEUED, RUNNING


class Ending(enum.Enum):
    """How the trainer ended."""

    COMPLETED = "completed"
    """Exit status 0 after a `completed` line: the trained model is there."""
    STOPPED = "stopped"
    """A `stopped` line: SIGTERM saved a resumable checkpoint."""
    FAILED = "failed"
    """Anything else: a `failed` line, a crash, or killed (cancel, lost lease, no stop in time)."""


class Verdict(enum.Enum):
    SUCCEED = "succeed"
    """The model is kept: the job succeeds."""
    SUCCEED_DESPITE_PAUSE = "succeed_despite_pause"
    """The last steps ran before the pause (or the pause and a resume) reached the trainer: the
    finished model is kept all the same."""
    REQUEUE = "requeue"
    """Stopped by the worker shutting down: queued again, to resume from the checkpoint."""
    FAIL = "fail"
    PAUSED_AT_CHECKPOINT = "paused_at_checkpoint"
    """The pause saved a checkpoint; resume continues from it."""
    PAUSED_WITHOUT_CHECKPOINT = "paused_without_checkpoint"
    """The trainer died before saving one; resume continues from the last one there is."""
    DISCARD = "discard"
    """Cancelled: whatever the trainer made is thrown away."""
    LEAVE = "leave"
    """Nothing to do: paused and resumed already (the resume's message runs it), or settled by
    someone else."""


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    counts_as_attempt: bool
    """Whether the run uses up one of the job's TUNERY_MAX_ATTEMPTS."""
    requeue: bool
    """Send the job's message again once the outcome is committed."""
    clean_up: bool
    """Remove the job's work directory: nothing in it will be resumed."""


def settle(status: str, ending: Ending, asked_to_stop: bool) -> Outcome:
    """The outcome for a job in `status` whose trainer ended so; `asked_to_stop`: the worker sent it
    SIGTERM (a pause or a shutdown), which is no failed attempt whatever the trainer did next."""
    counts = ending is not Ending.STOPPED and not asked_to_stop
    if status == CANCELLED:
        return Outcome(Verdict.DISCARD, counts, requeue=False, clean_up=True)
    if ending is Ending.COMPLETED:
        if status == RUNNING:
            return Outcome(Verdict.SUCCEED, counts, requeue=False, clean_up=True)
        if status in (PAUSED, QUEUED):
            return Outcome(Verdict.SUCCEED_DESPITE_PAUSE, counts, requeue=False, clean_up=True)
    elif status == RUNNING:
        if ending is Ending.STOPPED:
            return Outcome(Verdict.REQUEUE, counts, requeue=True, clean_up=False)
        return Outcome(Verdict.FAIL, counts, requeue=False, clean_up=False)
    elif status == PAUSED:
        verdict = (
            Verdict.PAUSED_AT_CHECKPOINT if ending is Ending.STOPPED else Verdict.PAUSED_WITHOUT_CHECKPOINT
        )
        return Outcome(verdict, counts, requeue=False, clean_up=False)
    return Outcome(Verdict.LEAVE, counts, requeue=False, clean_up=False)
