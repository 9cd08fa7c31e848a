"""The `server` fixture of the upload tests: the API with small upload limits and a key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from tests.api.uploads.hostile import MAX_LINE_BYTES, MAX_LINES, MAX_UPLOAD_BYTES, Server


@pytest.fixture
def server(settings: Settings, api_key_for) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    limited = settings.model_copy(
        update={
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            "max_line_bytes": MAX_LINE_BYTES,
            "max_lines": MAX_LINES,
        }
    )
    app, key = api_key_for(limited)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield Server(client, app, limited, key)
