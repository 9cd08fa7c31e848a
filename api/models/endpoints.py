"""/v1/models. Ids contain ':' and may contain '/' (sent as %2F): the route takes the whole path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.db import end_reads
from api.deps import CallerDep, SessionDep, SettingsDep
from api.errors import model_not_found
from api.fine_tuning import artifacts, tar_download
from api.models import downloads, service
from api.models.schemas import ModelDeleted, ModelList, ModelObject
from api.models.store import ModelStore
from api.one_hop import OneHopRoute

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=OneHopRoute)


async def get_model_store(request: Request) -> ModelStore:  # async: no threadpool hop
    return request.app.state.model_store


ModelStoreDep = Annotated[ModelStore, Depends(get_model_store)]


@router.get("", response_model=ModelList, response_model_exclude_none=True)
def list_models(session: SessionDep, caller: CallerDep, store: ModelStoreDep) -> ModelList:
    return ModelList(data=service.list_models(session, store, caller))


# Before retrieve: its `{model_id:path}` would take ".../download" as part of the id.
@router.get(
    "/{model_id:path}/download",
    response_class=StreamingResponse,
    responses={**tar_download.DOWNLOAD_RESPONSES, 202: {"description": "The merged export is being made."}},
)
def download_model(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    store: ModelStoreDep,
    model_id: str,
    format: Annotated[
        downloads.Format,
        Query(description="adapter: the artifact as trained; merged: the base with the adapter merged in."),
    ] = "adapter",
) -> Response:
    """Tunery's extension: a fine-tuned or checkpoint model as a tar, unpacking to adapter/ or model/."""
    artifact = downloads.find_artifact(session, settings, store, caller, model_id)
    end_reads(session)  # what follows may ask the bucket
    if format == "adapter":
        response = artifacts.download(request, settings, artifact.directory, f"{artifact.stem}-adapter.tar")
        if response is None:
            raise model_not_found(model_id)
        return response
    merged = downloads.merged_export(session, settings, artifact)
    if merged is None:
        return JSONResponse(
            downloads.preparing_body(artifact),
            status_code=202,
            headers={"Retry-After": str(downloads.RETRY_AFTER_SECONDS)},
        )
    response = artifacts.download(
        request, settings, merged, f"{artifact.stem}-merged.tar", downloads.MERGED_ROOT
    )
    if response is None:
        raise model_not_found(model_id)
    return response


@router.get("/{model_id:path}", response_model=ModelObject, response_model_exclude_none=True)
def retrieve_model(
    session: SessionDep, caller: CallerDep, settings: SettingsDep, store: ModelStoreDep, model_id: str
) -> ModelObject:
    return service.get_model(session, settings, store, caller, model_id)


@router.delete("/{model_id:path}", response_model=ModelDeleted)
def delete_model(
    session: SessionDep, caller: CallerDep, settings: SettingsDep, store: ModelStoreDep, model_id: str
) -> ModelDeleted:
    service.delete_model(session, settings, store, caller, model_id)
    return ModelDeleted(id=model_id, deleted=True)
