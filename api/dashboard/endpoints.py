"""/dashboard: the ops dashboard, admin only. Thin routes: page data from service.py, HTML from templates.

Every route but the sign-in depends on `SignedIn`; without a valid admin session the answer is the
sign-in page (pages) or a 401 (the JSON the pages poll).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api.auth.service import create_key, revoke_key
from api.dashboard import auth, evals, service
from api.dashboard.format import FILTERS
from api.db import end_reads
from api.deps import SessionDep, SettingsDep
from api.errors import InvalidRequest, NotFound
from api.fine_tuning import artifacts
from api.fine_tuning.status import ALLOWED
from api.models.endpoints import ModelStoreDep
from api.one_hop import OneHopRoute
from api.tables import ApiKey
from catalog.methods import METHOD_NAMES

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)

public = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=OneHopRoute)


def _signed_in(request: Request, session: SessionDep) -> ApiKey:
    return auth.signed_in_key(session, request)


SignedIn = Annotated[ApiKey, Depends(_signed_in)]
router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=OneHopRoute)


def _page(request: Request, name: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"page": name.removesuffix(".html"), **context})


@public.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request) -> HTMLResponse:
    return _page(request, "sign_in.html", error=None)


@public.post("/sign-in", response_class=HTMLResponse)
def sign_in(request: Request, session: SessionDep, key: Annotated[str, Form()] = "") -> Response:
    token = auth.sign_in(session, key)
    if token is None:
        page = _page(request, "sign_in.html", error="That is not an admin key.")
        page.status_code = 401
        return page
    answer = RedirectResponse("/dashboard/jobs", status_code=303)
    secure = request.url.scheme == "https"
    answer.set_cookie(
        auth.COOKIE, token, max_age=auth.LIFETIME_SECONDS, httponly=True, samesite="strict", secure=secure
    )
    return answer


@public.post("/sign-out")
def sign_out() -> Response:
    answer = RedirectResponse("/dashboard/sign-in", status_code=303)
    answer.delete_cookie(auth.COOKIE)
    return answer


@router.get("", response_class=HTMLResponse)
def home(_key: SignedIn) -> Response:
    return RedirectResponse("/dashboard/jobs", status_code=303)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep, _key: SignedIn) -> HTMLResponse:
    filters = _filters(request)
    return _page(
        request,
        "jobs.html",
        rows=service.job_rows(session, filters),
        filters=filters,
        statuses=list(ALLOWED),
        methods=METHOD_NAMES,
        projects=[p.name for p in service.repository.projects(session)],
        models=service.repository.distinct_models(session),
    )


@router.get("/api/jobs")
def jobs_json(request: Request, session: SessionDep, _key: SignedIn) -> JSONResponse:
    return JSONResponse([row.as_json() for row in service.job_rows(session, _filters(request))])


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, session: SessionDep, _key: SignedIn, job_id: str) -> HTMLResponse:
    job = service.job_or_404(session, job_id)
    return _page(request, "job.html", job=job)


@router.get("/api/jobs/{job_id}")
def job_json(session: SessionDep, settings: SettingsDep, _key: SignedIn, job_id: str) -> JSONResponse:
    return JSONResponse(service.job_live(session, settings, job_id))


@router.post("/api/jobs/{job_id}/{action}")
def job_control(
    session: SessionDep,
    settings: SettingsDep,
    key: SignedIn,
    job_id: str,
    action: str,
    x_tunery_dashboard: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    if x_tunery_dashboard != "1":  # only the dashboard's own script sends it: no cross-site form posts
        raise InvalidRequest("Missing the X-Tunery-Dashboard header.", param="X-Tunery-Dashboard")
    job = service.control(session, settings, key, job_id, action)
    return JSONResponse({"id": job.id, "status": job.status})


@router.get("/jobs/{job_id}/download")
def download(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _key: SignedIn,
    job_id: str,
    step: int | None = None,
) -> Response:
    job = service.job_or_404(session, job_id)
    if step is None:
        directory, name = artifacts.adapter_dir(settings, job.id), f"{job.id}-adapter.tar"
    else:
        directory, name = (
            artifacts.checkpoint_dir(settings, job.id, step),
            f"{job.id}-step-{step}-adapter.tar",
        )
    end_reads(session)
    response = artifacts.download(request, settings, directory, name)
    if response is None:
        raise NotFound(f"Fine-tuning job {job_id} has no such artifact.", param="step")
    return response


@router.get("/workers", response_class=HTMLResponse)
def workers_page(
    request: Request, session: SessionDep, settings: SettingsDep, _key: SignedIn
) -> HTMLResponse:
    return _page(request, "workers.html", workers=service.workers(session, settings))


@router.get("/queues", response_class=HTMLResponse)
def queues_page(request: Request, session: SessionDep, _key: SignedIn) -> HTMLResponse:
    return _page(request, "queues.html", queues=service.queues(session))


@router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request, session: SessionDep, settings: SettingsDep, store: ModelStoreDep, _key: SignedIn
) -> HTMLResponse:
    return _page(request, "models.html", models=service.models(session, settings, store))


@router.get("/evals", response_class=HTMLResponse)
def evals_page(request: Request, session: SessionDep, _key: SignedIn) -> HTMLResponse:
    return _page(request, "evals.html", evals=evals.evals_with_runs(session))


@router.get("/evals/{eval_id}", response_class=HTMLResponse)
def eval_page(request: Request, session: SessionDep, _key: SignedIn, eval_id: str) -> HTMLResponse:
    """The eval's runs side by side; `run` (twice) picks the two whose items are compared."""
    runs = request.query_params.getlist("run")
    return _page(request, "eval.html", c=evals.compare(session, eval_id, runs))


@router.get("/projects", response_class=HTMLResponse)
def projects_page(request: Request, session: SessionDep, _key: SignedIn) -> HTMLResponse:
    return _page(request, "projects.html", projects=service.projects_and_keys(session), new_key=None)


@router.post("/projects/keys", response_class=HTMLResponse)
def create_project_key(
    request: Request,
    session: SessionDep,
    _key: SignedIn,
    project: Annotated[str, Form(min_length=1, max_length=64)],
    admin: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    new_key = create_key(session, project.strip(), is_admin=admin)
    session.flush()
    return _page(request, "projects.html", projects=service.projects_and_keys(session), new_key=new_key)


@router.post("/projects/keys/{key_id}/revoke")
def revoke_project_key(session: SessionDep, _key: SignedIn, key_id: str) -> Response:
    try:
        revoke_key(session, key_id)
    except LookupError as error:
        raise NotFound(str(error), param="key_id") from None
    return RedirectResponse("/dashboard/projects", status_code=303)


def install(app: FastAPI) -> None:
    """Mount the dashboard on the API: its routes, its static files, and the sign-in answer."""
    app.include_router(public)
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")

    @app.exception_handler(auth.NotSignedIn)
    async def not_signed_in(request: Request, _exc: auth.NotSignedIn) -> Response:
        if request.url.path.startswith("/dashboard/api/") or request.method != "GET":
            return JSONResponse({"error": {"message": "Sign in to the dashboard.", "type": "auth"}}, 401)
        page = _page(request, "sign_in.html", error=None)
        page.status_code = 401
        return page


def _filters(request: Request) -> dict[str, str | None]:
    return {
        name: request.query_params.get(name) or None for name in ("status", "project", "model", "method", "q")
    }
