"""/v1/fine_tuning/alpha/graders: try a grader on one sample, or check it, before a job uses it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import CallerDep, SettingsDep
from api.graders import service
from api.graders.judge import BackendJudge
from api.graders.schemas import GraderRunIn, GraderRunOut, GraderValidateIn, GraderValidateOut
from api.one_hop import OneHopRoute
from graders import grader_json

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", tags=["graders"], route_class=OneHopRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "An invalid grader, its field named in `param`"}
}


@router.post("/run", response_model=GraderRunOut, responses=ERRORS)
def run_grader(body: GraderRunIn, request: Request, caller: CallerDep, settings: SettingsDep) -> GraderRunOut:
    """The reward the grader gives `model_sample` for `item`; a failure on it is in metadata.errors."""
    grader = service.read_grader(body.grader)
    state = request.app.state
    judge = BackendJudge(settings, state.sessionmaker, state.model_store, caller)
    return GraderRunOut.of(service.run(settings, judge, grader, body.model_sample, body.item))


@router.post("/validate", response_model=GraderValidateOut, responses=ERRORS)
def validate_grader(body: GraderValidateIn, _caller: CallerDep) -> GraderValidateOut:
    return GraderValidateOut(grader=grader_json(service.read_grader(body.grader)))
