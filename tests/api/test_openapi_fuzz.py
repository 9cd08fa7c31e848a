"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid; every answer must be no 5xx, a
documented status code, and a body that matches the documented schema. `make test` runs a bounded
number of cases per operation; `make fuzz` runs many more (TUNERY_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from api.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = int(os.environ.get("TUNERY_FUZZ_EXAMPLES", "15"))


def operation_labels() -> list[str]:
    """Every operation of the API, read from a throwaway app's OpenAPI document at collection."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir), database_url=None))
        try:
            paths = app.openapi()["paths"]
        finally:
            app.state.engine.dispose()
    return [f"{method.upper()} {path}" for path, operations in paths.items() for method in operations]


@pytest.mark.parametrize("label", operation_labels())
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors_and_every_answer_matches_the_schema(app, api_key: str, label: str, mode) -> None:  # type: ignore[no-untyped-def]
    operation = schemathesis.openapi.from_asgi("/openapi.json", app).find_operation_by_label(label)
    assert operation is not None, label
    headers = {"Authorization": f"Bearer {api_key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:  # type: ignore[no-untyped-def]
        # A schema-valid request may still be refused with 400 by rules a schema cannot say (a
        # file's lines, an id that must exist): "valid input is accepted" does not hold here.
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    try:
        check()
    except Unsatisfiable:
        # Only string ids and no body: every request schemathesis can make is a valid one.
        assert mode is GenerationMode.NEGATIVE
        pytest.skip(f"{label} takes no input that its schema calls invalid")
