"""/v1/files over the real database: uploads, reads, deletes, and every bad input."""

from __future__ import annotations

import hashlib
import os
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.config import Settings
from api.tables import File
from tests.support.storage import both_storages as storage  # noqa: F401 (both backends)
from tests.support.storage import staged, stored_objects
from tests.support.tiny_model import jsonl, toy_chat_examples


def upload(client: TestClient, content: bytes, name: str = "train.jsonl", purpose: str = "fine-tune"):  # type: ignore[no-untyped-def]
    return client.post("/v1/files", files={"file": (name, content)}, data={"purpose": purpose})


def upload_expiring(client: TestClient, seconds: int):  # type: ignore[no-untyped-def]
    """An upload with expires_after, as the SDK flattens it into the multipart form."""
    expiry = {"expires_after[anchor]": "created_at", "expires_after[seconds]": str(seconds)}
    return client.post(
        "/v1/files",
        files={"file": ("t.jsonl", jsonl(toy_chat_examples(10)))},
        data={"purpose": "fine-tune", **expiry},
    )


def stored_blobs(settings: Settings) -> list[str]:
    """The files' objects (in the data directory or the bucket) and anything left in staging."""
    return stored_objects(settings, "files/") + [str(p) for p in staged(settings)]


def count_rows(app) -> int:  # type: ignore[no-untyped-def]
    with app.state.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(File))


class TestUpload:
    def test_upload_returns_a_processed_file_object(self, client: TestClient) -> None:
        content = jsonl(toy_chat_examples(12))
        response = upload(client, content)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"].startswith("file-")
        assert body["object"] == "file"
        assert body["bytes"] == len(content)
        assert body["filename"] == "train.jsonl"
        assert body["purpose"] == "fine-tune"
        assert body["status"] == "processed"
        # Optional in OpenAI's spec, so absent when empty rather than null.
        assert "expires_at" not in body and "status_details" not in body

    def test_content_round_trips_byte_for_byte(self, client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
        content = "\ufeff".encode() + jsonl(toy_chat_examples(10)).replace(b"\n", b"\r\n")
        file_id = upload(client, content).json()["id"]
        assert client.get(f"/v1/files/{file_id}/content").content == content
        with app.state.sessionmaker() as session:
            row = session.scalar(select(File).where(File.id == file_id))
            assert row.sha256 == hashlib.sha256(content).hexdigest()

    def test_listed_retrieved_and_deleted(self, client: TestClient, settings: Settings) -> None:
        first = upload(client, jsonl(toy_chat_examples(10))).json()["id"]
        second = upload(client, jsonl(toy_chat_examples(11))).json()["id"]
        listed = client.get("/v1/files").json()
        assert [f["id"] for f in listed["data"]] == [second, first]
        assert client.get("/v1/files", params={"order": "asc", "limit": 1}).json()["has_more"] is True
        assert client.get(f"/v1/files/{first}").json()["id"] == first
        deleted = client.delete(f"/v1/files/{first}").json()
        assert deleted == {"id": first, "object": "file", "deleted": True}
        assert client.get(f"/v1/files/{first}").status_code == 404
        assert len(stored_blobs(settings)) == 1

    def test_content_answers_a_range_with_206(self, client: TestClient) -> None:
        content = jsonl(toy_chat_examples(20))
        file_id = upload(client, content).json()["id"]
        part = client.get(f"/v1/files/{file_id}/content", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206, part.text
        assert part.content == content[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(content)}"
        tail = client.get(f"/v1/files/{file_id}/content", headers={"Range": "bytes=-7"})
        assert tail.status_code == 206 and tail.content == content[-7:]


class TestBadUploads:
    def test_a_line_that_is_not_json_names_the_line(
        self, client: TestClient, app, settings: Settings
    ) -> None:  # type: ignore[no-untyped-def]
        lines = jsonl(toy_chat_examples(5)) + b"{not json\n" + jsonl(toy_chat_examples(5))
        response = upload(client, lines)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == "file"
        assert error["code"] == "invalid_file_format"
        assert "line 6: is not valid JSON" in error["message"]
        assert count_rows(app) == 0
        assert stored_blobs(settings) == []

    def test_several_bad_lines_are_all_reported(self, client: TestClient) -> None:
        examples = toy_chat_examples(10)
        examples[2]["messages"][1]["role"] = "robot"
        examples[7] = {"question": "no messages here"}
        error = upload(client, jsonl(examples)).json()["error"]
        assert "line 3: messages[1].role must be one of system, user, assistant, tool" in error["message"]
        assert "line 8: must have 'messages'" in error["message"]
        assert error["message"].startswith("Invalid file format for fine-tuning: 2 invalid line(s)")

    def test_a_binary_file_is_refused(self, client: TestClient) -> None:
        response = upload(client, b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", name="picture.png")
        assert response.status_code == 400
        assert "line 1: is not valid UTF-8" in response.json()["error"]["message"]

    def test_an_empty_file_is_refused(self, client: TestClient) -> None:
        response = upload(client, b"\n\n")
        assert response.status_code == 400
        assert "no examples" in response.json()["error"]["message"]

    def test_an_unknown_purpose_is_refused(self, client: TestClient) -> None:
        response = upload(client, jsonl(toy_chat_examples(10)), purpose="vision")
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "purpose"

    def test_a_missing_file_field_names_it(self, client: TestClient) -> None:
        response = client.post("/v1/files", data={"purpose": "fine-tune"})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "file"

    def test_too_large_is_413_and_stores_nothing(self, app, api_key: str, settings: Settings) -> None:  # type: ignore[no-untyped-def]
        app.state.settings = settings.model_copy(update={"max_upload_bytes": 100})
        with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as small:
            response = upload(small, jsonl(toy_chat_examples(10)))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "file_too_large"
        assert count_rows(app) == 0
        assert stored_blobs(settings) == []

    def test_a_declared_oversized_body_is_refused_before_it_is_read(
        self, settings: Settings, api_key_for
    ) -> None:  # type: ignore[no-untyped-def]
        app, key = api_key_for(settings.model_copy(update={"max_upload_bytes": 1000}))
        body = b"x" * (200 * 1024)
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as small:
            declared = upload(small, body)
            # No Content-Length: the body streams in chunks and is cut off at the limit.
            chunked = small.post(
                "/v1/files",
                content=iter([body[i : i + 8192] for i in range(0, len(body), 8192)]),
                headers={"Content-Type": "multipart/form-data; boundary=xyz"},
            )
        for response in (declared, chunked):
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "file_too_large"
        assert count_rows(app) == 0
        assert stored_blobs(settings) == []


def test_staged_leftovers_of_a_killed_upload_are_swept_at_start(settings: Settings) -> None:
    staging = settings.files_path / ".staging"
    staging.mkdir(parents=True)
    old, fresh = staging / "tmp-old", staging / "tmp-in-flight"
    old.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload in flight")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    app = create_app(settings)
    app.state.engine.dispose()
    assert not old.exists() and fresh.exists()


class TestListAndExpiry:
    def test_pages_by_cursor_in_either_order_and_by_purpose(self, client: TestClient) -> None:
        ids = [upload(client, jsonl(toy_chat_examples(10 + i))).json()["id"] for i in range(5)]
        seen, after = [], None
        while True:
            params = {"limit": 2, "order": "asc", **({"after": after} if after else {})}
            page = client.get("/v1/files", params=params).json()
            seen += [f["id"] for f in page["data"]]
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert seen == ids
        newest = client.get("/v1/files", params={"limit": 3, "order": "desc"}).json()
        assert [f["id"] for f in newest["data"]] == ids[::-1][:3]
        assert client.get("/v1/files", params={"purpose": "fine-tune-results"}).json()["data"] == []

    def test_expires_after_sets_expires_at_and_an_expired_file_is_gone(self, client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
        response = upload_expiring(client, seconds=3600)
        assert response.status_code == 200, response.text
        file = response.json()
        assert file["expires_at"] == file["created_at"] + 3600
        with app.state.sessionmaker() as session, session.begin():
            row = session.scalar(select(File).where(File.id == file["id"]))
            row.expires_at = 1
        assert client.get(f"/v1/files/{file['id']}").status_code == 404
        assert client.get("/v1/files").json()["data"] == []

    def test_expiry_out_of_range_is_400(self, client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
        response = upload_expiring(client, seconds=5)
        assert response.status_code == 400 and response.json()["error"]["param"] == "expires_after.seconds"
        assert count_rows(app) == 0


class TestAuth:
    def test_missing_key_is_401(self, app) -> None:  # type: ignore[no-untyped-def]
        with TestClient(app) as anonymous:
            response = anonymous.get("/v1/files")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"

    def test_wrong_key_is_401_and_not_echoed(self, app) -> None:  # type: ignore[no-untyped-def]
        with TestClient(app, headers={"Authorization": "Bearer tun-wrong-key-123456"}) as wrong:
            response = wrong.get("/v1/files")
        assert response.status_code == 401
        assert "tun-wrong-key-123456" not in response.text

    def test_unknown_file_is_404(self, client: TestClient) -> None:
        response = client.get("/v1/files/file-doesnotexist")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "invalid_request_error"
