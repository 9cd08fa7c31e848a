"""Projects are walls: a key reaches only its own project's objects, and a stranger's id is a 404.

The matrix walks every route of the app, so a route added later is covered without editing this
file: for each, project A's key is sent at project B's ids, and must get the answer an unknown id
gets. Admin keys see across projects; revoked keys see nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.auth.service import create_key, revoke_key
from api.db import session_scope
from tests.api.test_jobs import create
from tests.support.api_objects import graded_eval_run, succeed_with_checkpoints
from tests.support.tiny_model import jsonl, toy_chat_examples

pytestmark = pytest.mark.integration


@dataclass
class Tenant:
    client: TestClient
    key: str
    project_id: str
    file_id: str
    job_id: str
    fine_tuned_model: str
    checkpoint: str
    permission_id: str
    webhook_id: str = ""
    eval_id: str = ""
    run_id: str = ""
    output_item_id: str = ""


def upload(client: TestClient) -> str:
    body = jsonl(toy_chat_examples(10))
    response = client.post("/v1/files", files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.fixture
def tenants(app) -> Iterator[tuple[Tenant, Tenant]]:  # type: ignore[no-untyped-def]
    clients = []
    made = []
    for name in ("team-a", "team-b"):
        with session_scope(app.state.sessionmaker) as session:
            key = create_key(session, name)
        client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
        clients.append(client)
        file_id = upload(client)
        job = create(client, file_id).json()
        checkpoints = succeed_with_checkpoints(app, job["id"], steps=(3,))
        made.append((client, key, job, file_id, checkpoints[0]))
    (ca, ka, ja, fa, cpa), (cb, kb, jb, fb, cpb) = made
    grant_b = cb.post(
        f"/v1/fine_tuning/checkpoints/{cpb}/permissions", json={"project_ids": [ja["organization_id"]]}
    )
    grant_a = ca.post(
        f"/v1/fine_tuning/checkpoints/{cpa}/permissions", json={"project_ids": [jb["organization_id"]]}
    )
    # B shares nothing with A in the matrix below: drop B's grant so the checkpoint is private again.
    permission_b = grant_b.json()["data"][0]["id"]
    assert cb.delete(f"/v1/fine_tuning/checkpoints/{cpb}/permissions/{permission_b}").status_code == 200
    grant_b = cb.post(f"/v1/fine_tuning/checkpoints/{cpb}/permissions", json={"project_ids": []})
    a = Tenant(
        ca,
        ka,
        ja["organization_id"],
        fa,
        ja["id"],
        get_model(ca, ja["id"]),
        cpa,
        grant_a.json()["data"][0]["id"],
    )
    b = Tenant(cb, kb, jb["organization_id"], fb, jb["id"], get_model(cb, jb["id"]), cpb, permission_b)
    for tenant in (a, b):
        # A literal public address: registering it resolves nothing over the network.
        hook = {"url": "https://8.8.8.8/tunery", "events": ["fine_tuning.job.succeeded"]}
        tenant.webhook_id = tenant.client.post("/v1/webhooks", json=hook).json()["id"]
        tenant.eval_id, tenant.run_id, tenant.output_item_id = graded_eval_run(app, tenant.client)
    yield a, b
    for client in clients:
        client.close()


def get_model(client: TestClient, job_id: str) -> str:
    return client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["fine_tuned_model"]


def routes_with_ids(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every (method, path) of the API that takes an id, read from its OpenAPI document."""
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{" in path
        for method in operations
    ]


def fill(path: str, owner: Tenant) -> str:
    ids = {
        "file_id": owner.file_id,
        "job_id": owner.job_id,
        "model_id": owner.fine_tuned_model,
        "checkpoint": owner.checkpoint,
        "permission_id": owner.permission_id,
        "webhook_id": owner.webhook_id,
        "eval_id": owner.eval_id,
        "run_id": owner.run_id,
        "output_item_id": owner.output_item_id,
    }
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: ids[m.group(1)], path)


def test_every_route_answers_404_for_another_projects_ids(app, tenants: tuple[Tenant, Tenant]) -> None:  # type: ignore[no-untyped-def]
    a, b = tenants
    routes = routes_with_ids(app)
    assert len(routes) >= 15, routes  # the matrix really walks the API
    before = snapshot(b)
    for method, path in routes:
        url = fill(path, b)
        body = {"project_ids": [a.project_id]} if method == "POST" and path.endswith("/permissions") else None
        response = a.client.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.status_code, response.text)
        error = response.json()["error"]
        assert b.job_id not in error["message"] or "No fine-tuning job" in error["message"]
    assert snapshot(b) == before, "a refused request changed another project's objects"


def snapshot(owner: Tenant) -> dict:
    c = owner.client
    return {
        "file": c.get(f"/v1/files/{owner.file_id}").json(),
        "job": c.get(f"/v1/fine_tuning/jobs/{owner.job_id}").json(),
        "model": c.get(f"/v1/models/{owner.fine_tuned_model}").json(),
        "checkpoints": c.get(f"/v1/fine_tuning/jobs/{owner.job_id}/checkpoints").json(),
        "webhooks": c.get("/v1/webhooks").json(),
        "eval": c.get(f"/v1/evals/{owner.eval_id}").json(),
        "run": c.get(f"/v1/evals/{owner.eval_id}/runs/{owner.run_id}").json(),
    }


def test_lists_show_only_the_callers_objects(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    assert [f["id"] for f in a.client.get("/v1/files").json()["data"] if f["purpose"] == "fine-tune"] == [
        a.file_id
    ]
    assert [j["id"] for j in a.client.get("/v1/fine_tuning/jobs").json()["data"]] == [a.job_id]
    models = {m["id"] for m in a.client.get("/v1/models").json()["data"]}
    assert a.fine_tuned_model in models and b.fine_tuned_model not in models and b.checkpoint not in models
    # A shared its checkpoint with B: B sees that one checkpoint, nothing else of A's.
    models_b = {m["id"] for m in b.client.get("/v1/models").json()["data"]}
    assert a.checkpoint in models_b and a.fine_tuned_model not in models_b


def test_a_strangers_file_is_refused_like_a_missing_one(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    theirs = a.client.post("/v1/fine_tuning/jobs", json={"model": "tiny-llama", "training_file": b.file_id})
    missing = a.client.post(
        "/v1/fine_tuning/jobs", json={"model": "tiny-llama", "training_file": "file-nope"}
    )
    assert theirs.status_code == missing.status_code == 400
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "file_not_found"


def test_admin_key_sees_every_project_and_can_narrow_to_one(app, tenants: tuple[Tenant, Tenant]) -> None:  # type: ignore[no-untyped-def]
    a, b = tenants
    with session_scope(app.state.sessionmaker) as session:
        admin_key = create_key(session, "ops", is_admin=True)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
        jobs = {j["id"] for j in admin.get("/v1/fine_tuning/jobs").json()["data"]}
        assert {a.job_id, b.job_id} <= jobs
        assert admin.get(f"/v1/fine_tuning/jobs/{b.job_id}/events").status_code == 200
        assert admin.get(f"/v1/files/{a.file_id}").status_code == 200
        narrowed = admin.get("/v1/fine_tuning/jobs", headers={"OpenAI-Project": a.project_id}).json()
        assert [j["id"] for j in narrowed["data"]] == [a.job_id]
    # A member key may name only its own project.
    assert a.client.get("/v1/fine_tuning/jobs", headers={"OpenAI-Project": a.project_id}).status_code == 200
    wrong = a.client.get("/v1/fine_tuning/jobs", headers={"OpenAI-Project": b.project_id})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "mismatched_project"


def test_a_revoked_key_is_401_everywhere(app, tenants: tuple[Tenant, Tenant]) -> None:  # type: ignore[no-untyped-def]
    a, _ = tenants
    with session_scope(app.state.sessionmaker) as session:
        revoke_key(session, a.key)
    response = a.client.get(f"/v1/files/{a.file_id}")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
