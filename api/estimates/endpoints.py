"""/v1/fine_tuning/estimates: what a job would need, before it is created (Tunery's extension)."""

from __future__ import annotations

from contextlib import ExitStack

from fastapi import APIRouter

from api.deps import CallerDep, SessionDep, SettingsDep
from api.errors import InvalidRequest, model_not_found
from api.estimates import service
from api.estimates.schemas import EstimateCreate, EstimateObject
from api.files import service as files
from api.files.endpoints import StorageDep
from api.fine_tuning.methods import method_and_hyperparameters
from api.fine_tuning.recipe_schema import RecipeIn
from api.models.endpoints import ModelStoreDep
from api.one_hop import OneHopRoute
from catalog.recipes import Recipe

router = APIRouter(prefix="/v1/fine_tuning/estimates", tags=["fine-tuning"], route_class=OneHopRoute)


@router.post("", response_model=EstimateObject)
def create_estimate(
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    store: ModelStoreDep,
    storage: StorageDep,
    body: EstimateCreate,
) -> EstimateObject:
    """Parameters, memory per GPU (per term and per precision), tokens per epoch and, for each GPU pool,
    whether the job fits and how long it would take: from the model's config and safetensors headers,
    no weights loaded."""
    method_type, hyperparameters = method_and_hyperparameters(body)
    base = store.get(body.model)
    if base is None:
        raise model_not_found(body.model, param="model")
    recipe = Recipe.from_dict((body.recipe or RecipeIn()).model_dump())
    key = None
    if body.training_file:
        row = files.in_project(session, caller.project.pk, body.training_file)
        if row is None:
            raise InvalidRequest(
                f"invalid training_file: no such file {body.training_file}",
                param="training_file",
                code="file_not_found",
            )
        key = row.storage_key
    with ExitStack() as files_here:
        # On S3 the file is downloaded to this API's staging for the count, and removed after.
        training = files_here.enter_context(storage.local_copy(key)) if key is not None else None
        estimate = service.estimate(session, settings, base, method_type, hyperparameters, recipe, training)
    return EstimateObject.of(estimate)
