"""/v1/models. Ids contain ':' and may contain '/' (sent as %2F): the route takes the whole path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from api.deps import CallerDep, SessionDep, SettingsDep
from api.models import service
from api.models.schemas import ModelDeleted, ModelList, ModelObject
from api.models.store import ModelStore

router = APIRouter(prefix="/v1/models", tags=["models"])


def get_model_store(request: Request) -> ModelStore:
    return request.app.state.model_store


ModelStoreDep = Annotated[ModelStore, Depends(get_model_store)]


@router.get("", response_model=ModelList)
def list_models(session: SessionDep, caller: CallerDep, store: ModelStoreDep) -> ModelList:
    return ModelList(data=service.list_models(session, store, caller))


@router.get("/{model_id:path}", response_model=ModelObject)
def retrieve_model(
    session: SessionDep, caller: CallerDep, store: ModelStoreDep, model_id: str
) -> ModelObject:
    return service.get_model(session, store, caller, model_id)


@router.delete("/{model_id:path}", response_model=ModelDeleted)
def delete_model(
    session: SessionDep, caller: CallerDep, settings: SettingsDep, store: ModelStoreDep, model_id: str
) -> ModelDeleted:
    service.delete_model(session, settings, store, caller, model_id)
    return ModelDeleted(id=model_id, deleted=True)
