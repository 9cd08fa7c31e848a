"""/v1/models: base models from the store."""

from fastapi.testclient import TestClient

from tests.conftest import TINY_MODEL


def test_base_models_are_listed_and_retrievable(client: TestClient) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == [TINY_MODEL]
    model = client.get(f"/v1/models/{TINY_MODEL}").json()
    assert model["object"] == "model"
    assert model["owned_by"] == "tunery"


def test_unknown_model_is_404_model_not_found(client: TestClient) -> None:
    response = client.get("/v1/models/ft:tiny-llama:default::nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
