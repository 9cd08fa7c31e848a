"""/v1/webhooks: register (the secret shown once), list without secrets, remove; URLs into the
internal network refused unless TUNERY_WEBHOOK_ALLOW_PRIVATE allows them."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.webhooks.addresses import RefusedURL, is_internal, resolve

pytestmark = pytest.mark.integration

EVENTS = ["fine_tuning.job.succeeded", "fine_tuning.job.failed"]


@pytest.fixture
def private_allowed(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True})


class TestRegister:
    def test_create_shows_the_secret_once_and_list_never(
        self, api_key_for, private_allowed: Settings
    ) -> None:  # type: ignore[no-untyped-def]
        app, key = api_key_for(private_allowed)
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
            made = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": EVENTS})
            assert made.status_code == 200, made.text
            endpoint = made.json()
            assert endpoint["id"].startswith("we_")
            assert endpoint["object"] == "webhook_endpoint"
            assert endpoint["events"] == EVENTS
            assert endpoint["secret"].startswith("whsec_")
            assert len(base64.b64decode(endpoint["secret"].removeprefix("whsec_"))) == 32

            listed = client.get("/v1/webhooks").json()
            assert [e["id"] for e in listed["data"]] == [endpoint["id"]]
            assert "secret" not in listed["data"][0]

            assert client.delete(f"/v1/webhooks/{endpoint['id']}").json()["deleted"] is True
            assert client.get("/v1/webhooks").json()["data"] == []
            assert client.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 404

    def test_another_project_neither_sees_nor_removes_it(
        self, api_key_for, private_allowed: Settings
    ) -> None:  # type: ignore[no-untyped-def]
        from api.auth.service import create_key
        from api.db import session_scope

        app, key = api_key_for(private_allowed)
        with session_scope(app.state.sessionmaker) as session:
            other = create_key(session, "other-team")
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
            made = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": EVENTS}).json()
        with TestClient(app, headers={"Authorization": f"Bearer {other}"}) as client:
            assert client.get("/v1/webhooks").json()["data"] == []
            assert client.delete(f"/v1/webhooks/{made['id']}").status_code == 404

    def test_unknown_event_is_refused_naming_it(self, client: TestClient) -> None:
        answer = client.post(
            "/v1/webhooks", json={"url": "https://example.com/", "events": ["batch.completed"]}
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "events"
        assert "batch.completed" in answer.json()["error"]["message"]


class TestInternalAddressesRefused:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8000/hook",
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "ftp://example.com/hook",
            "file:///etc/passwd",
            "http://user:pw@example.com/hook",
        ],
    )
    def test_refused_without_the_flag(self, client: TestClient, url: str) -> None:
        answer = client.post("/v1/webhooks", json={"url": url, "events": EVENTS})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "url"
        assert client.get("/v1/webhooks").json()["data"] == []

    def test_allowed_with_the_flag(self, api_key_for, private_allowed: Settings) -> None:  # type: ignore[no-untyped-def]
        app, key = api_key_for(private_allowed)
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
            answer = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:8000/", "events": EVENTS})
        assert answer.status_code == 200, answer.text

    def test_public_addresses_are_not_internal(self) -> None:
        assert not is_internal("8.8.8.8")
        assert is_internal("172.16.0.1") and is_internal("100.64.0.1") and is_internal("fe80::1")

    def test_the_check_resolves_names(self) -> None:
        with pytest.raises(RefusedURL, match=r"127\.0\.0\.1"):
            resolve("http://localhost:9/", allow_private=False)
        assert resolve("http://localhost:9/", allow_private=True).address in ("127.0.0.1", "::1")
