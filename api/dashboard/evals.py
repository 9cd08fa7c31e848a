"""The dashboard's evals: every eval with its runs, and one eval's runs side by side (pass rate per
criterion, and the items where two runs differ: the answer to "is the fine-tune better than its base")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.evals import repository
from api.tables import Eval, EvalOutputItem, EvalRun, Project


@dataclass(frozen=True)
class RunColumn:
    run: EvalRun
    pass_rates: dict[str, float | None]
    """Per criterion: passed / (passed + failed); None before any item is graded."""


@dataclass(frozen=True)
class Difference:
    datasource_item_id: int
    item: dict[str, Any]
    answers: list[tuple[str, str]] = field(default_factory=list)
    """Per compared run: its item's status and the answer it graded."""


@dataclass(frozen=True)
class Comparison:
    eval: Eval
    project: str
    criteria: list[str]
    columns: list[RunColumn]
    compared: list[EvalRun]
    """The two runs whose items are compared: those asked for, else the two newest."""
    differences: list[Difference]


def evals_with_runs(session: Session) -> list[tuple[Eval, str, list[EvalRun]]]:
    rows = session.execute(
        select(Eval, Project.name).join(Project, Project.pk == Eval.project_pk).order_by(Eval.pk.desc())
    )
    return [(row, project, repository.runs_of_eval(session, row)) for row, project in rows.all()]


def compare(session: Session, eval_id: str, run_ids: list[str]) -> Comparison:
    row = repository.get_eval(session, None, eval_id)
    if row is None:
        raise NotFound(f"No eval found with id {eval_id}", param="eval_id")
    project = session.get(Project, row.project_pk)
    runs = repository.runs_of_eval(session, row)
    criteria = [criterion["name"] for criterion in row.testing_criteria]
    columns = [RunColumn(run, _pass_rates(run)) for run in runs]
    asked = [run for run in runs if run.id in run_ids]
    compared = asked[:2] if len(asked) >= 2 else runs[-2:]
    differences = _differences(session, compared) if len(compared) == 2 else []
    return Comparison(row, project.name if project else "", criteria, columns, compared, differences)


def _pass_rates(run: EvalRun) -> dict[str, float | None]:
    rates: dict[str, float | None] = {}
    for entry in run.per_testing_criteria_results:
        graded = entry["passed"] + entry["failed"]
        rates[entry["testing_criteria"]] = entry["passed"] / graded if graded else None
    return rates


def _differences(session: Session, runs: list[EvalRun]) -> list[Difference]:
    by_run: dict[int, dict[int, EvalOutputItem]] = {run.pk: {} for run in runs}
    for item in repository.items_of_runs(session, [run.pk for run in runs]):
        by_run[item.run_pk][item.datasource_item_id] = item
    first, second = (by_run[run.pk] for run in runs)
    differences = []
    for index in sorted(set(first) & set(second)):
        pair = (first[index], second[index])
        if pair[0].status != pair[1].status:
            answers = [(one.status, _answer(one)) for one in pair]
            differences.append(Difference(index, pair[0].datasource_item, answers))
    return differences


def _answer(item: EvalOutputItem) -> str:
    output = item.sample.get("output") or []
    if output and isinstance(output[0], dict):
        return str(output[0].get("content") or "")
    return str((item.sample.get("error") or {}).get("message") or "")
