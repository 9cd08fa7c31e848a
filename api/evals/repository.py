"""Queries on evals, their runs and output items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from api.tables import Eval, EvalOutputItem, EvalRun


def add(session: Session, row: Eval | EvalRun | EvalOutputItem) -> None:
    session.add(row)
    session.flush()


def get_eval(session: Session, scope: int | None, eval_id: str) -> Eval | None:
    query = select(Eval).where(Eval.id == eval_id)
    return session.scalar(query if scope is None else query.where(Eval.project_pk == scope))


def eval_by_pk(session: Session, pk: int) -> Eval | None:
    return session.get(Eval, pk)


def evals_page(
    session: Session, scope: int | None, *, after: Eval | None, limit: int, ascending: bool, by_update: bool
) -> list[Eval]:
    """One row more than asked, to tell whether more follow."""
    query = select(Eval) if scope is None else select(Eval).where(Eval.project_pk == scope)
    key = (Eval.updated_at, Eval.pk) if by_update else (Eval.pk,)
    if after is not None:
        query = query.where(_beyond(key, after, ascending))
    order = [column.asc() if ascending else column.desc() for column in key]
    return list(session.scalars(query.order_by(*order).limit(limit + 1)))


def remove_eval(session: Session, row: Eval) -> None:
    runs = select(EvalRun.pk).where(EvalRun.eval_pk == row.pk)
    session.execute(delete(EvalOutputItem).where(EvalOutputItem.run_pk.in_(runs)))
    session.execute(delete(EvalRun).where(EvalRun.eval_pk == row.pk))
    session.delete(row)
    session.flush()


def get_run(session: Session, row: Eval, run_id: str, *, for_update: bool = False) -> EvalRun | None:
    query = select(EvalRun).where(EvalRun.eval_pk == row.pk, EvalRun.id == run_id)
    return session.scalar(query.with_for_update(of=EvalRun) if for_update else query)


def run_for_update(session: Session, run_id: str) -> EvalRun | None:
    """The worker's read: locks the row on Postgres, so a cancel and a worker's batch wait for each other."""
    return session.scalar(select(EvalRun).where(EvalRun.id == run_id).with_for_update(of=EvalRun))


def runs_page(
    session: Session, row: Eval, *, after: EvalRun | None, limit: int, ascending: bool, status: str | None
) -> list[EvalRun]:
    query = select(EvalRun).where(EvalRun.eval_pk == row.pk)
    if status is not None:
        query = query.where(EvalRun.status == status)
    if after is not None:
        query = query.where(EvalRun.pk > after.pk if ascending else EvalRun.pk < after.pk)
    order = EvalRun.pk.asc() if ascending else EvalRun.pk.desc()
    return list(session.scalars(query.order_by(order).limit(limit + 1)))


def runs_of_eval(session: Session, row: Eval) -> list[EvalRun]:
    return list(session.scalars(select(EvalRun).where(EvalRun.eval_pk == row.pk).order_by(EvalRun.pk)))


def runs_of_job(session: Session, job_id: str) -> list[EvalRun]:
    query = select(EvalRun).where(EvalRun.fine_tuning_job_id == job_id)
    return list(session.scalars(query.order_by(EvalRun.pk)))


def remove_run(session: Session, run: EvalRun) -> None:
    session.execute(delete(EvalOutputItem).where(EvalOutputItem.run_pk == run.pk))
    session.delete(run)
    session.flush()


def get_item(session: Session, run: EvalRun, item_id: str) -> EvalOutputItem | None:
    return session.scalar(
        select(EvalOutputItem).where(EvalOutputItem.run_pk == run.pk, EvalOutputItem.id == item_id)
    )


def items_page(
    session: Session,
    run: EvalRun,
    *,
    after: EvalOutputItem | None,
    limit: int,
    ascending: bool,
    status: str | None,
) -> list[EvalOutputItem]:
    query = select(EvalOutputItem).where(EvalOutputItem.run_pk == run.pk)
    if status is not None:
        query = query.where(EvalOutputItem.status == status)
    key = EvalOutputItem.datasource_item_id
    if after is not None:
        query = query.where(key > after.datasource_item_id if ascending else key < after.datasource_item_id)
    return list(session.scalars(query.order_by(key.asc() if ascending else key.desc()).limit(limit + 1)))


def items_of_runs(session: Session, run_pks: list[int]) -> list[EvalOutputItem]:
    if not run_pks:
        return []
    query = select(EvalOutputItem).where(EvalOutputItem.run_pk.in_(run_pks))
    return list(session.scalars(query.order_by(EvalOutputItem.datasource_item_id)))


def recorded_indexes(session: Session, run: EvalRun) -> set[int]:
    query = select(EvalOutputItem.datasource_item_id).where(EvalOutputItem.run_pk == run.pk)
    return set(session.scalars(query))


def with_expired_leases(session: Session, now: int) -> list[EvalRun]:
    """Runs in progress whose worker stopped renewing its lease: locked, skipping rows another holds."""
    query = select(EvalRun).where(
        EvalRun.status == "in_progress",
        EvalRun.lease_expires_at.is_not(None),
        EvalRun.lease_expires_at < now,
    )
    return list(session.scalars(query.with_for_update(of=EvalRun, skip_locked=True)))


def awaiting_delivery(session: Session, *, enqueued_before: int, now: int) -> list[EvalRun]:
    """Queued runs whose message went out before `enqueued_before` and that no worker leases."""
    query = select(EvalRun).where(
        EvalRun.status == "queued",
        or_(EvalRun.enqueued_at.is_(None), EvalRun.enqueued_at < enqueued_before),
        or_(EvalRun.lease_expires_at.is_(None), EvalRun.lease_expires_at <= now),
    )
    return list(session.scalars(query.order_by(EvalRun.pk).with_for_update(of=EvalRun, skip_locked=True)))


def _beyond(key: tuple[Any, ...], after: Eval, ascending: bool) -> Any:
    if len(key) == 1:
        return Eval.pk > after.pk if ascending else Eval.pk < after.pk
    if ascending:
        return or_(
            Eval.updated_at > after.updated_at, (Eval.updated_at == after.updated_at) & (Eval.pk > after.pk)
        )
    return or_(
        Eval.updated_at < after.updated_at, (Eval.updated_at == after.updated_at) & (Eval.pk < after.pk)
    )
