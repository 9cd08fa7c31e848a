"""Fixtures of the multi-node tests: a Ray cluster of two CPU nodes in network namespaces of the
test's own (tests/support/ray_cluster.py), and the API and a worker that drives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.processes import LiveService, live_service
from tests.support.ray_cluster import RayCluster, missing_prerequisite, ray_cluster


@pytest.fixture
def backend() -> str:
    return "postgres"  # the cluster is the subject here, not the database


@pytest.fixture
def cluster() -> Iterator[RayCluster]:
    reason = missing_prerequisite()
    if reason is not None:
        pytest.skip(f"a namespaced Ray cluster cannot be made here: {reason}")
    with ray_cluster(nodes=2) as made:
        yield made


@pytest.fixture
def cluster_service(
    cluster: RayCluster, settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> Iterator[LiveService]:
    """`tunery api` and `tunery worker`, the worker driving `cluster` (TUNERY_RAY_ADDRESS)."""
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    extra = {
        "TUNERY_RAY_ADDRESS": cluster.address,
        # Placing two ranks takes seconds here; an unplaceable job should not take ten minutes.
        "TUNERY_RAY_PLACEMENT_SECONDS": "60",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    with live_service(settings, tmp_path / "logs", extra_env=extra) as running:
        yield running
