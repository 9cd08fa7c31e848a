"""What becomes of a job once its trainer exits, for every status the row can have then and every way
the trainer can end: the whole decision as one table."""

from __future__ import annotations

import pytest

from api.fine_tuning.status import (
    CANCELLED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    VALIDATING_FILES,
)
from worker.jobs.outcome import Ending, Outcome, Verdict, settle

COMPLETED, STOPPED, CRASHED = Ending.COMPLETED, Ending.STOPPED, Ending.FAILED

# status when the trainer exited, how it ended -> verdict, requeue, clean up the work directory
TABLE = [
    (RUNNING, COMPLETED, Verdict.SUCCEED, False, True),
    (RUNNING, STOPPED, Verdict.REQUEUE, True, False),
    (RUNNING, CRASHED, Verdict.FAIL, False, False),
    (PAUSED, COMPLETED, Verdict.SUCCEED_DESPITE_PAUSE, False, True),
    (PAUSED, STOPPED, Verdict.PAUSED_AT_CHECKPOINT, False, False),
    (PAUSED, CRASHED, Verdict.PAUSED_WITHOUT_CHECKPOINT, False, False),
    # Paused and resumed before the trainer stopped: the resume's message runs the job next.
    (QUEUED, COMPLETED, Verdict.SUCCEED_DESPITE_PAUSE, False, True),
    (QUEUED, STOPPED, Verdict.LEAVE, False, False),
    (QUEUED, CRASHED, Verdict.LEAVE, False, False),
    (CANCELLED, COMPLETED, Verdict.DISCARD, False, True),
    (CANCELLED, STOPPED, Verdict.DISCARD, False, True),
    (CANCELLED, CRASHED, Verdict.DISCARD, False, True),
    # Settled by someone else meanwhile (or never running): left as it is.
    *[
        (status, ending, Verdict.LEAVE, False, False)
        for status in (FAILED, SUCCEEDED, VALIDATING_FILES)
        for ending in Ending
    ],
]

# how it ended, whether the worker had sent SIGTERM (pause, shutdown) -> the run uses up an attempt
COUNTS_AS_ATTEMPT = {
    (COMPLETED, False): True,
    (COMPLETED, True): False,
    (STOPPED, False): False,
    (STOPPED, True): False,
    (CRASHED, False): True,
    (CRASHED, True): False,
}

EVERY_COMBINATION = [
    pytest.param(
        status,
        ending,
        asked_to_stop,
        Outcome(verdict, COUNTS_AS_ATTEMPT[ending, asked_to_stop], requeue, clean_up),
        id=f"{status}-{ending.value}-{'sigterm' if asked_to_stop else 'own'}",
    )
    for status, ending, verdict, requeue, clean_up in TABLE
    for asked_to_stop in (False, True)
]


@pytest.mark.parametrize(("status", "ending", "asked_to_stop", "expected"), EVERY_COMBINATION)
def test_every_status_and_ending_has_one_outcome(
    status: str, ending: Ending, asked_to_stop: bool, expected: Outcome
) -> None:
    assert settle(status, ending, asked_to_stop) == expected


def test_the_table_covers_every_status_and_ending() -> None:
    from api.fine_tuning.status import ALLOWED

    assert {(row[0], row[1]) for row in TABLE} == {
        (status, ending) for status in ALLOWED for ending in Ending
    }
