"""The job state machine: allowed moves, refused moves, and the event beside each change."""

from __future__ import annotations

import pytest

from api.fine_tuning import status
from api.fine_tuning.status import ALLOWED, TERMINAL, InvalidTransition


def test_terminal_statuses_allow_no_move() -> None:
    for terminal in TERMINAL:
        assert ALLOWED[terminal] == frozenset()


def test_every_status_is_reachable_from_validating_files() -> None:
    reached, frontier = {status.VALIDATING_FILES}, [status.VALIDATING_FILES]
    while frontier:
        for nxt in ALLOWED[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(ALLOWED)


class FakeSession:
    """Collects what `transition` adds; the database itself is covered by the integration tests."""

    def __init__(self) -> None:
        self.added: list = []

    def add(self, row) -> None:  # type: ignore[no-untyped-def]
        self.added.append(row)

    def flush(self) -> None:
        pass

    def scalars(self, _query) -> list:  # type: ignore[no-untyped-def]
        return []  # no webhook endpoints to tell of a job's end


def make_job(current: str):  # type: ignore[no-untyped-def]
    from api.tables import FineTuningJob

    return FineTuningJob(
        id="ftjob-x", pk=1, status=current, started_at=None, finished_at=None, estimated_finish=5
    )


def test_a_move_sets_times_and_writes_an_event() -> None:
    session = FakeSession()
    job = make_job(status.QUEUED)
    status.transition(session, job, status.RUNNING, "Fine-tuning job started")  # type: ignore[arg-type]
    assert job.status == status.RUNNING and job.started_at is not None
    status.transition(session, job, status.SUCCEEDED, "done")  # type: ignore[arg-type]
    assert job.finished_at is not None and job.estimated_finish is None
    assert [e.message for e in session.added] == ["Fine-tuning job started", "done"]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (status.SUCCEEDED, status.RUNNING),
        (status.VALIDATING_FILES, status.RUNNING),
        (status.CANCELLED, status.QUEUED),
    ],
)
def test_refused_moves_change_nothing(current: str, target: str) -> None:
    session = FakeSession()
    job = make_job(current)
    with pytest.raises(InvalidTransition):
        status.transition(session, job, target, "nope")  # type: ignore[arg-type]
    assert job.status == current and session.added == []
