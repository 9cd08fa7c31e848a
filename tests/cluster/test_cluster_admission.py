"""Job create and recipe num_nodes: more than one machine is refused with a 400 that says why where the
service has no Ray cluster (TUNERY_RAY_ADDRESS unset), and accepted where it has one."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from tests.api.test_jobs import create, job_count

TWO_NODES = {"type": "lora", "distributed": "fsdp", "num_gpus": 1, "num_nodes": 2}


@pytest.fixture
def ray_address() -> str | None:
    return None


@pytest.fixture
def settings(settings: Settings, ray_address: str | None) -> Settings:
    return settings.model_copy(update={"ray_address": ray_address})


def test_two_nodes_without_a_cluster_is_a_400_naming_the_field(
    client: TestClient,
    app,
    training_file: str,  # type: ignore[no-untyped-def]
) -> None:
    response = create(client, training_file, recipe=TWO_NODES)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "recipe.num_nodes"
    assert error["code"] == "invalid_recipe"
    assert "TUNERY_RAY_ADDRESS" in error["message"] and "needs a Ray cluster" in error["message"]
    assert job_count(app) == 0


@pytest.mark.parametrize("ray_address", ["http://10.231.0.2:8265"])
def test_two_nodes_with_a_cluster_is_created(client: TestClient, training_file: str) -> None:
    response = create(client, training_file, recipe=TWO_NODES)

    assert response.status_code == 200, response.text
    assert response.json()["recipe"]["num_nodes"] == 2


def test_one_node_needs_no_cluster(client: TestClient, training_file: str) -> None:
    response = create(client, training_file, recipe={"type": "lora", "distributed": "ddp", "num_gpus": 2})

    assert response.status_code == 200, response.text
