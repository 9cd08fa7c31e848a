"""Eval runs whose items are an uploaded file in the bucket (TUNERY_STORAGE_URL=s3://...): the worker
reads them from S3, not from a data directory it does not share with the API. The same test as on
the data directory, on moto's S3 server."""

from __future__ import annotations

import pytest

from tests.evals.test_runs_on_workers import backend, service  # noqa: F401 (the fixtures)
from tests.evals.test_runs_on_workers import (
    test_items_that_do_not_match_the_schema_are_errored_items_naming_the_field as test_a_file_in_the_bucket_is_read_by_the_worker,  # noqa: E501, F401
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def storage() -> str:
    return "s3"
