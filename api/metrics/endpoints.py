"""GET /metrics in Prometheus' text format, for the admin key or the configured scrape token."""

from __future__ import annotations

import hmac
import os
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from api.auth.service import authenticate
from api.db import session_scope
from api.errors import TuneryError
from api.metrics.service import DatabaseCollector

router = APIRouter(include_in_schema=False)


class AdminOnly(TuneryError):
    status_code = 403
    type = "permission_error"
    code = "admin_key_required"


@router.get("/metrics")
def metrics(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    settings = request.app.state.settings
    _check_scraper(request, authorization)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # every API process's request samples
        parts = [generate_latest(registry)]
    else:
        parts = [generate_latest(REGISTRY)]
    gauges = CollectorRegistry()
    gauges.register(DatabaseCollector(request.app.state.sessionmaker, settings))
    parts.append(generate_latest(gauges))
    return Response(b"".join(parts), media_type=CONTENT_TYPE_LATEST)


def _check_scraper(request: Request, authorization: str | None) -> None:
    token = request.app.state.settings.metrics_token
    given = (authorization or "").partition(" ")[2].strip()
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return
    with session_scope(request.app.state.sessionmaker, writes=False) as session:
        caller = authenticate(session, authorization)
    if not caller.is_admin:
        raise AdminOnly("GET /metrics answers an admin key or TUNERY_METRICS_TOKEN, not a project's key.")
