"""The baseline of bench/load.py: the least an API could do for the same three calls.

A minimal FastAPI app served exactly as `tunery api` is (uvicorn, TUNERY_API_WORKERS processes, the
same host, keep-alive and log level), over the same database through the same engine (pool, SQLite
pragmas, timeouts) and the same ORM rows, so it runs the same SQL for a job's insert, a page of jobs
and one job. It has no auth, no validation of the body, no events, no queue message, no rate limit
and no response model: what Tunery spends beyond it is the cost of being a service.

    python -m bench.baseline_api       (bench/load.py starts it; reads the same TUNERY_* variables)
"""

from __future__ import annotations

import os
import secrets
from typing import Annotated, Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import select

from api import clock
from api.cli import serve_factory
from api.config import Settings
from api.db import make_engine, make_sessionmaker, session_scope
from api.ids import new_id
from api.parent_death import die_with_parent
from api.tables import FineTuningJob, Project

COLUMNS = ("id", "model", "training_file", "status", "created_at", "seed", "suffix")


def create_app() -> FastAPI:
    die_with_parent()  # as Tunery's workers do
    settings = Settings()
    engine = make_engine(settings, serves_requests=True)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions, writes=False) as session:
        # A project of its own (bench/load.py makes it), so Tunery's listings never show these jobs.
        project_pk = session.scalar(select(Project.pk).where(Project.name == os.environ["BENCH_PROJECT"]))
    app = FastAPI()

    # Sync endpoints, in the threadpool, as Tunery's are.
    @app.post("/v1/fine_tuning/jobs")
    def create(body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        with session_scope(sessions) as session:
            job = FineTuningJob(
                id=new_id("ftjob-"),
                project_pk=project_pk,
                model=body["model"],
                training_file=body["training_file"],
                validation_file=None,
                status="validating_files",
                hyperparameters={},
                method={"type": "supervised"},
                recipe={},
                seed=secrets.randbelow(2**31),
                suffix=body.get("suffix"),
                result_files=[],
                created_at=clock.now(),
            )
            session.add(job)
            session.flush()
            return JSONResponse(plain(job))

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs(limit: int = 20) -> JSONResponse:
        with session_scope(sessions, writes=False) as session:
            query = select(FineTuningJob).where(FineTuningJob.project_pk == project_pk)
            rows = list(session.scalars(query.order_by(FineTuningJob.pk.desc()).limit(limit + 1)))
            return JSONResponse({"data": [plain(job) for job in rows[:limit]], "has_more": len(rows) > limit})

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    def retrieve(job_id: str) -> JSONResponse:
        with session_scope(sessions, writes=False) as session:
            query = select(FineTuningJob).where(
                FineTuningJob.project_pk == project_pk, FineTuningJob.id == job_id
            )
            job = session.scalar(query)
            if job is None:
                return JSONResponse({"error": {"message": "not found"}}, status_code=404)
            return JSONResponse(plain(job))

    return app


def plain(job: FineTuningJob) -> dict[str, Any]:
    return {"object": "fine_tuning.job", **{name: getattr(job, name) for name in COLUMNS}}


if __name__ == "__main__":
    serve_factory("bench.baseline_api:create_app", Settings())
