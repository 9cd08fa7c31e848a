"""The dashboard in-process: only an admin key signs in, every page renders from the database, and the
controls act through the jobs service."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.auth.service import create_key, revoke_key
from api.db import session_scope
from tests.conftest import TINY_MODEL

pytestmark = pytest.mark.integration


@pytest.fixture
def admin_key(app) -> str:  # type: ignore[no-untyped-def]
    with session_scope(app.state.sessionmaker) as session:
        return create_key(session, is_admin=True)


@pytest.fixture
def browser(app, admin_key: str):  # type: ignore[no-untyped-def]
    with TestClient(app) as client:
        signed = client.post("/dashboard/sign-in", data={"key": admin_key}, follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/jobs"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and admin_key not in cookie
        yield client


class TestSignIn:
    def test_nobody_gets_more_than_the_sign_in_page(self, app) -> None:  # type: ignore[no-untyped-def]
        with TestClient(app) as client:
            for path in ("/dashboard", "/dashboard/jobs", "/dashboard/workers", "/dashboard/projects"):
                answer = client.get(path)
                assert answer.status_code == 401 and 'name="key"' in answer.text
            assert client.get("/dashboard/api/jobs").status_code == 401

    def test_a_member_key_is_refused(self, app, api_key: str) -> None:  # type: ignore[no-untyped-def]
        with TestClient(app) as client:
            answer = client.post("/dashboard/sign-in", data={"key": api_key})
            assert answer.status_code == 401 and "not an admin key" in answer.text
            assert client.get("/dashboard/jobs").status_code == 401

    def test_a_forged_cookie_is_refused(self, app, browser: TestClient) -> None:  # type: ignore[no-untyped-def]
        value = browser.cookies["tunery_dashboard"]
        key_id, expiry, signature = value.split(".")
        with TestClient(app) as other:
            other.cookies.set("tunery_dashboard", f"{key_id}.{int(expiry) + 3600}.{signature}")
            assert other.get("/dashboard/jobs").status_code == 401

    def test_revoking_the_key_ends_its_session(self, app, browser: TestClient) -> None:  # type: ignore[no-untyped-def]
        assert browser.get("/dashboard/jobs").status_code == 200
        key_id = browser.cookies["tunery_dashboard"].split(".")[0]
        with session_scope(app.state.sessionmaker) as session:
            revoke_key(session, key_id)
        assert browser.get("/dashboard/jobs").status_code == 401


class TestPages:
    def test_every_page_renders(self, browser: TestClient, client: TestClient, training_file: str) -> None:
        job = client.post(
            "/v1/fine_tuning/jobs",
            json={"model": TINY_MODEL, "training_file": training_file, "suffix": "fruit"},
        ).json()
        jobs = browser.get("/dashboard/jobs")
        assert jobs.status_code == 200 and job["id"] in jobs.text and "validating_files" in jobs.text
        assert job["id"] in browser.get("/dashboard/jobs", params={"q": "fru"}).text
        assert job["id"] not in browser.get("/dashboard/jobs", params={"status": "running"}).text
        assert job["id"] not in browser.get("/dashboard/jobs", params={"method": "dpo"}).text
        assert (
            job["id"]
            in browser.get("/dashboard/jobs", params={"project": "default", "model": TINY_MODEL}).text
        )
        page = browser.get(f"/dashboard/jobs/{job['id']}")
        assert page.status_code == 200 and 'id="loss-curve"' in page.text and "n_epochs" in page.text
        live = browser.get(f"/dashboard/api/jobs/{job['id']}").json()
        assert live["status"] == "validating_files" and live["training_loss"] == []
        assert any("Created fine-tuning job" in e["message"] for e in live["events"])
        assert "tunery.validation" in browser.get("/dashboard/queues").text
        assert TINY_MODEL in browser.get("/dashboard/models").text
        assert "No worker has registered" in browser.get("/dashboard/workers").text
        assert browser.get("/dashboard/jobs/ftjob-nope").status_code == 404

    def test_controls_go_through_the_jobs_service(
        self, browser: TestClient, client: TestClient, training_file: str
    ) -> None:
        job = client.post(
            "/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file}
        ).json()
        url = f"/dashboard/api/jobs/{job['id']}/cancel"
        assert browser.post(url).status_code == 400  # not from the dashboard's script
        answer = browser.post(url, headers={"X-Tunery-Dashboard": "1"})
        assert answer.json() == {"id": job["id"], "status": "cancelled"}
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "cancelled"
        again = browser.post(url, headers={"X-Tunery-Dashboard": "1"})
        assert again.status_code == 400 and "already cancelled" in again.json()["error"]["message"]

    def test_keys_are_made_once_shown_and_revoked(self, app, browser: TestClient) -> None:  # type: ignore[no-untyped-def]
        made = browser.post("/dashboard/projects/keys", data={"project": "research"})
        assert made.status_code == 200
        key = made.text.split('id="new-key">')[1].split("<")[0]
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as research:
            assert research.get("/v1/fine_tuning/jobs").status_code == 200
            listing = browser.get("/dashboard/projects").text
            assert "research" in listing and key[:8] in listing and key not in listing
            key_id = listing.split('data-key="')[-1].split('"')[0]
            revoked = browser.post(f"/dashboard/projects/keys/{key_id}/revoke", follow_redirects=False)
            assert revoked.status_code == 303
            assert research.get("/v1/fine_tuning/jobs").status_code == 401
