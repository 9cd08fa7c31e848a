"""The probes: /healthz (the process answers) and /readyz (and it can use its database).

A liveness probe asks /healthz: a database outage must not restart every API pod. A readiness
probe asks /readyz: a pod that cannot reach the database (a wrong password, a NetworkPolicy, a
failover in progress) takes no traffic, and a rollout of such pods stops before the old ones go.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

log = logging.getLogger("tunery.api")

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        reason = f"database: {type(error).__name__}"
        log.warning("not ready: %s", error)
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok"})
