"""A job request's method and its hyperparameters, "auto" where not given: shared by job create and
the estimate, which take the same body."""

from __future__ import annotations

from pydantic import BaseModel

from api.errors import InvalidRequest
from api.fine_tuning.schemas import JobCreate
from catalog.methods import DEFAULT_METHOD, METHOD_NAMES, METHODS


def method_and_hyperparameters(request: JobCreate) -> tuple[str, dict[str, object]]:
    method = request.method
    if method is None:
        return DEFAULT_METHOD, _hyperparameters(DEFAULT_METHOD, request.hyperparameters)
    if method.type not in METHODS:
        raise InvalidRequest(
            f"method.type {method.type!r} is not supported; supported: {', '.join(METHOD_NAMES)}",
            param="method.type",
        )
    try:
        given = method.given_hyperparameters()
    except ValueError as error:
        raise InvalidRequest(str(error), param="method") from None
    if given is not None and request.hyperparameters is not None:
        raise InvalidRequest(
            f"Give hyperparameters either in method.{method.type}.hyperparameters or in the legacy top-level "
            "hyperparameters, not both.",
            param="hyperparameters",
        )
    return method.type, _hyperparameters(method.type, given or request.hyperparameters)


def _hyperparameters(method_name: str, given: BaseModel | None) -> dict[str, object]:
    """The method's hyperparameters, "auto" where not given (the legacy top-level ones included)."""
    schema = METHODS[method_name].hyperparameters
    return schema(**(given.model_dump() if given is not None else {})).model_dump()
