"""Uploads whose content is not JSON lines (compressed, archived, UTF-16, binary, garbage) say what they
are, and an accepted upload leaves its staging directory empty."""

from __future__ import annotations

import gzip
import io
import random
import zipfile

import pytest

from tests.api.uploads.hostile import (
    Server,
    error_of,
)
from tests.support.tiny_model import jsonl, toy_chat_examples


def zipped(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


VALID = jsonl(toy_chat_examples(5)).decode()


class TestContent:
    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            pytest.param(
                gzip.compress(VALID.encode()),
                "line 1: the file is gzip-compressed; upload the uncompressed JSONL file",
                id="gzip",
            ),
            pytest.param(
                zipped("train.jsonl", VALID.encode()),
                "line 1: the file is a zip archive; upload the JSONL file it holds",
                id="zip",
            ),
            pytest.param(
                VALID.encode("utf-16"), "line 1: the file is UTF-16 text; save it as UTF-8", id="utf-16-bom"
            ),
            pytest.param(
                VALID.encode("utf-16-le"),
                "line 1: has a NUL byte (byte 1): the file is binary, or UTF-16 without a byte-order mark",
                id="utf-16-no-bom",
            ),
            pytest.param(
                b"\x7fELF\x02\x01\x01\x00" + random.Random(0).randbytes(4000),
                "line 1: has a NUL byte (byte 7): the file is binary",
                id="binary",
            ),
            pytest.param(
                bytes(random.Random(1).randrange(0x80, 0x100) for _ in range(1000)),
                "line 1: is not valid UTF-8 (byte 0)",
                id="garbage",
            ),
        ],
    )
    def test_content_that_is_not_jsonl_says_what_it_is(
        self, server: Server, content: bytes, problem: str
    ) -> None:
        error = error_of(server.upload(content))
        assert error["param"] == "file" and error["code"] == "invalid_file_format"
        assert problem in error["message"]
        server.assert_nothing_stored()

    def test_a_compressed_file_is_one_problem_not_one_per_line(self, server: Server) -> None:
        error = error_of(server.upload(gzip.compress(VALID.encode() * 8)))
        assert error["message"].startswith("Invalid file format for fine-tuning: 1 invalid line(s): line 1:")


def test_staging_is_empty_after_an_accepted_upload(server: Server) -> None:
    response = server.upload(jsonl(toy_chat_examples(3)))
    assert response.status_code == 200, response.text
    staging = server.settings.files_path / ".staging"
    assert list(staging.iterdir()) == []
