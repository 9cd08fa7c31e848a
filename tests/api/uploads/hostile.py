"""A test server with small upload limits, and the helpers that write hostile requests to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.config import Settings
from api.tables import File

MAX_UPLOAD_BYTES = 256 * 1024
MAX_LINE_BYTES = 2048
MAX_LINES = 50
BOUNDARY = "hostile-boundary"


@dataclass
class Server:
    client: TestClient
    app: FastAPI
    settings: Settings
    key: str

    def upload(self, content: bytes, name: str = "train.jsonl", purpose: str = "fine-tune") -> Any:
        return self.client.post("/v1/files", files={"file": (name, content)}, data={"purpose": purpose})

    def post_raw(self, body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> Any:
        return self.client.post("/v1/files", content=body, headers={"Content-Type": content_type})

    def assert_nothing_stored(self) -> None:
        with self.app.state.sessionmaker() as session:
            assert session.scalar(select(func.count()).select_from(File)) == 0
        root = self.settings.files_path
        assert not root.exists() or [p for p in root.rglob("*") if p.is_file()] == []
        staging = root / ".staging"  # FileStorage's
        assert not staging.exists() or list(staging.iterdir()) == []


def example_of_length(n_bytes: int) -> bytes:
    """A valid chat example line of exactly n_bytes, its newline included."""
    empty = json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]})
    padding = n_bytes - len(empty) - 1
    return (
        json.dumps(
            {"messages": [{"role": "user", "content": "x" * padding}, {"role": "assistant", "content": "a"}]}
        ).encode()
        + b"\n"
    )


def part(name: str, value: bytes, filename: bytes | None = None) -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return b"--" + BOUNDARY.encode() + b"\r\n" + disposition + b"\r\n\r\n" + value + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return error
