"""Tunery's extension to job create, `eval`: {"eval_id", "data_source"}. The job is checked to name an
eval of its project and a completions data source (its `model` is Tunery's to fill, twice: the
fine-tuned model and its base; api/evals/fine_tuning.py starts both runs when the job succeeds)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.auth.service import Caller
from api.errors import InvalidRequest
from api.evals import repository
from api.evals.data_sources import CompletionsDataSource, FileIdSource, read_data_source
from api.evals.schemas import EvalLink
from api.evals.source_files import source_file


def read_link(session: Session, caller: Caller, link: EvalLink, base_model: str) -> dict[str, Any]:
    """What job create stores in `eval_on_success`, or a 400 naming the field."""
    if repository.get_eval(session, caller.project.pk, link.eval_id) is None:
        raise InvalidRequest(
            f"invalid eval.eval_id: no such eval {link.eval_id}", param="eval.eval_id", code="eval_not_found"
        )
    if link.data_source.get("type") != "completions":
        raise InvalidRequest(
            "eval.data_source.type must be 'completions': the runs generate with the fine-tuned model "
            "and with its base",
            param="eval.data_source.type",
        )
    value = {**link.data_source, "model": link.data_source.get("model") or base_model}
    source = read_data_source(value, "eval.data_source")
    assert isinstance(source, CompletionsDataSource)
    if isinstance(source.source, FileIdSource):
        source_file(session, caller, source.source.id, "eval.data_source.source.id")
    data_source = source.model_dump(mode="json", exclude_none=True)
    data_source.pop("model")
    return {"eval_id": link.eval_id, "data_source": data_source}
