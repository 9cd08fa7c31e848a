"""The probes of deploy/kubernetes/: /healthz answers while the process runs, /readyz only while the
database answers too."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.config import Settings
from tests.support.services import free_port


def test_healthz_and_readyz_answer_ok_without_a_key(client: TestClient) -> None:
    for path in ("/healthz", "/readyz"):
        response = client.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path
        assert response.json() == {"status": "ok"}


def test_readyz_is_503_while_healthz_is_200_when_the_database_is_unreachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(
        data_dir=tmp_path, database_url=f"postgresql://tunery@127.0.0.1:{port}/tunery", db_timeout_seconds=2
    )
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            response = client.get("/readyz")
    finally:
        app.state.engine.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["reason"].startswith("database: ")
