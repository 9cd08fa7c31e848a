"""Hostile and broken uploads: each is a 4xx naming what is wrong, and leaves nothing behind (no row,
no blob, nothing in the staging directory). Inputs are generated here, against small configured
limits, so the suite stays fast."""

from __future__ import annotations

import asyncio
import io
import json
import time
import tracemalloc
from typing import Any

import pytest
from sqlalchemy import select

from api.files.validation import check_lines, read_lines
from api.tables import File
from tests.api.uploads.hostile import (
    BOUNDARY,
    MAX_LINE_BYTES,
    MAX_LINES,
    MAX_UPLOAD_BYTES,
    Server,
    error_of,
    example_of_length,
    multipart,
    part,
)
from tests.support.tiny_model import jsonl, toy_chat_examples


class TestLimits:
    def test_a_line_longer_than_the_limit_is_refused_naming_it(self, server: Server) -> None:
        content = (
            jsonl(toy_chat_examples(2)) + example_of_length(MAX_LINE_BYTES + 1) + jsonl(toy_chat_examples(2))
        )
        error = error_of(server.upload(content))
        assert error["param"] == "file" and error["code"] == "invalid_file_format"
        assert error["message"] == (
            "Invalid file format for fine-tuning: 1 invalid line(s): line 3: is longer than 2048 bytes, "
            "the limit of a line (TUNERY_MAX_LINE_BYTES)"
        )
        server.assert_nothing_stored()

    def test_a_line_at_the_limit_is_accepted(self, server: Server) -> None:
        response = server.upload(example_of_length(MAX_LINE_BYTES) * 3)
        assert response.status_code == 200, response.text

    def test_one_line_over_the_upload_limit_is_413(self, server: Server) -> None:
        error = error_of(server.upload(b"[" * (MAX_UPLOAD_BYTES + 1)), status=413)
        assert error["code"] == "file_too_large" and error["param"] == "file"
        server.assert_nothing_stored()

    def test_more_lines_than_the_limit_are_refused(self, server: Server) -> None:
        error = error_of(server.upload(jsonl(toy_chat_examples(MAX_LINES + 1))))
        assert "line 51: the file has more than 50 lines, the limit (TUNERY_MAX_LINES)" in error["message"]
        server.assert_nothing_stored()

    def test_blank_lines_count_toward_the_line_limit(self, server: Server) -> None:
        error = error_of(server.upload(jsonl(toy_chat_examples(1)) + b"\n" * 100_000))
        assert "line 51: the file has more than 50 lines" in error["message"]
        server.assert_nothing_stored()


class TestBoundedReading:
    def test_a_huge_line_is_never_held_in_memory(self) -> None:
        size = 64 * 1024 * 1024  # a 64 MB line with no newline, generated as it is read

        class Endless(io.RawIOBase):
            left = size

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                n = min(len(buffer), self.left)
                buffer[:n] = b"a" * n
                self.left -= n
                return n

        stream = io.BufferedReader(Endless())
        tracemalloc.start()
        try:
            lines = [len(line) for line in read_lines(stream, 1024)]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert lines == [1025]  # cut just past the limit, for check_lines to report
        assert stream.read() == b""  # the rest was read past, not left for a next "line"
        assert peak < 8 * 1024 * 1024

    def test_the_line_after_a_long_one_is_read_whole(self) -> None:
        stream = io.BytesIO(b"x" * 5000 + b"\nnext\n" + b"last")
        assert [line[:4] for line in read_lines(stream, 100)] == [b"xxxx", b"next", b"last"]


class TestJsonBombs:
    def test_deep_nesting_is_refused(self, server: Server) -> None:
        for bomb in (b"[" * 2000, b"[" * 1000 + b'{"a":' * 200):  # 1,200 levels in under 2 KB
            error = error_of(server.upload(bomb + b"\n"))
            assert "line 1: is nested too deeply" in error["message"]
        server.assert_nothing_stored()

    def test_a_huge_string_is_refused_by_the_line_limit(self, server: Server) -> None:
        line = json.dumps({"prompt": "p", "completion": "c" * 100_000}).encode()
        error = error_of(server.upload(line))
        assert "line 1: is longer than 2048 bytes" in error["message"]
        server.assert_nothing_stored()

    def test_many_keys_with_one_duplicated_cost_linear_time(self) -> None:
        # Counting each key with list.count made this line (60,000 keys, 650 KB) take about 30 s.
        line = b"{" + b",".join(b'"k%d":0' % i for i in range(60_000)) + b',"k0":1}'
        started = time.perf_counter()
        report = check_lines([line])
        assert time.perf_counter() - started < 5
        assert report.problems[0] == "line 1: has the key 'k0' more than once in one object"

    def test_a_long_key_over_a_long_list_costs_linear_memory(self) -> None:
        # A path string per value would be 10,000 copies of the 10 KB key: 100 MB.
        key = "k" * 10_000
        line = json.dumps({"messages": [{key: [0] * 10_000 + ["\ud800"]}]}).encode()
        tracemalloc.start()
        try:
            report = check_lines([line])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20 * 1024 * 1024
        assert report.problems[0].startswith("line 1: messages[0].kkkk")
        assert report.problems[0].endswith("…")  # the message is cut, not 10 KB long

    def test_a_million_empty_messages_report_only_the_first_problems(self) -> None:
        line = json.dumps({"messages": [{}] * 1_000_000}).encode()
        report = check_lines([line])
        # Two for each of the first five messages, and one saying the rest were not checked.
        assert report.n_problems == 11


HOSTILE_NAMES = [
    pytest.param(b"../../etc/passwd", "passwd", id="parent-traversal"),
    pytest.param(b"/etc/passwd", "passwd", id="absolute"),
    pytest.param(b"..\\..\\windows\\win.ini", "win.ini", id="backslashes"),
    pytest.param(b"C:\\data\\train.jsonl", "train.jsonl", id="windows-path"),
    pytest.param(b"tr\x00ai\x1bn\t.jsonl", "train.jsonl", id="control-characters"),
    pytest.param("\u202elnosj.exe".encode(), "lnosj.exe", id="bidi-override"),
    pytest.param(b"", "upload.jsonl", id="empty"),
    pytest.param(b"..", "upload.jsonl", id="dot-dot"),
    pytest.param(b"a/b/", "upload.jsonl", id="trailing-slash"),
    pytest.param(b"n" * 1000 + b".jsonl", "n" * 249 + ".jsonl", id="very-long"),
]


class TestFileNames:
    @pytest.mark.parametrize(("sent", "stored"), HOSTILE_NAMES)
    def test_the_stored_name_is_a_safe_base_name_and_never_a_path(
        self, server: Server, sent: bytes, stored: str
    ) -> None:
        body = multipart(part("purpose", b"fine-tune"), part("file", jsonl(toy_chat_examples(3)), sent))
        response = server.post_raw(body)
        assert response.status_code == 200, response.text
        file = response.json()
        assert file["filename"] == stored
        with server.app.state.sessionmaker() as session:
            row = session.scalar(select(File).where(File.id == file["id"]))
            assert row.filename == stored
            key = row.storage_key
        assert key == f"{row.project_pk}/{file['id']}"  # the key never derives from the name
        root = server.settings.files_path
        assert [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] == [key]
        download = server.client.get(f"/v1/files/{file['id']}/content")
        assert download.status_code == 200
        assert "/" not in download.headers["content-disposition"].removeprefix("attachment; ")


class TestBodies:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            pytest.param(
                {"json": {"purpose": "fine-tune", "file": "x"}},
                "takes a multipart/form-data body with a 'file' part and a 'purpose' field, "
                "not application/json",
                id="json",
            ),
            pytest.param(
                {"data": {"purpose": "fine-tune", "file": "x"}},
                "not application/x-www-form-urlencoded",
                id="urlencoded",
            ),
            pytest.param(
                {"content": b"{}", "headers": {"Content-Type": "text/plain"}}, "not text/plain", id="text"
            ),
            pytest.param(
                {"files": {"purpose": (None, "fine-tune"), "file": (None, '{"prompt": "a"}')}},
                "file must be a file part (Content-Disposition with a filename), not a plain form field",
                id="file-as-form-field",
            ),
            pytest.param(
                {"files": {"purpose": (None, "fine-tune"), "dataset": ("t.jsonl", b"{}")}},
                "Missing required parameter: file",
                id="no-file-part",
            ),
        ],
    )
    def test_a_body_that_is_not_a_file_upload_names_the_file_field(
        self, server: Server, kwargs: dict[str, Any], message: str
    ) -> None:
        error = error_of(server.client.post("/v1/files", **kwargs))
        assert error["param"] == "file"
        assert message in error["message"]
        server.assert_nothing_stored()

    def test_a_wrong_purpose_names_the_purpose_field(self, server: Server) -> None:
        error = error_of(server.upload(jsonl(toy_chat_examples(3)), purpose="assistants"))
        assert error["param"] == "purpose"
        assert "purpose must be one of fine-tune, evals, not 'assistants'" in error["message"]
        server.assert_nothing_stored()

    @pytest.mark.parametrize(
        "cut",
        [
            pytest.param(lambda body: body[: len(body) // 2], id="mid-part"),
            pytest.param(lambda body: body[:60], id="mid-part-headers"),
            pytest.param(lambda body: body.removesuffix(f"--{BOUNDARY}--\r\n".encode()), id="no-closing"),
            pytest.param(lambda body: body.removesuffix(b"\r\n")[:-3], id="closing-cut"),
        ],
    )
    def test_a_truncated_multipart_body_is_400(self, server: Server, cut: Any) -> None:
        body = multipart(part("purpose", b"fine-tune"), part("file", jsonl(toy_chat_examples(5)), b"t.jsonl"))
        error = error_of(server.post_raw(cut(body)))
        assert error["param"] == "file" and error["code"] == "truncated_body"
        assert f"ended without its closing boundary ('--{BOUNDARY}--')" in error["message"]
        server.assert_nothing_stored()

    def test_a_whole_multipart_body_split_at_the_closing_boundary_is_accepted(self, server: Server) -> None:
        body = multipart(part("purpose", b"fine-tune"), part("file", jsonl(toy_chat_examples(5)), b"t.jsonl"))
        chunks = [body[: len(body) - 10], body[len(body) - 10 :]]  # the delimiter spans two messages
        response = server.client.post(
            "/v1/files",
            content=iter(chunks),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert response.status_code == 200, response.text

    def test_a_body_shorter_than_its_content_length_is_400(self, server: Server) -> None:
        body = multipart(part("purpose", b"fine-tune"), part("file", jsonl(toy_chat_examples(5)), b"t.jsonl"))
        status, response = asyncio.run(asgi_post(server, body, content_length=len(body) + 1000))
        assert status == 400
        error = response["error"]
        assert error["param"] == "file" and error["code"] == "truncated_body"
        assert (
            f"ended after {len(body)} of the {len(body) + 1000} bytes its Content-Length" in error["message"]
        )
        server.assert_nothing_stored()


async def asgi_post(server: Server, body: bytes, content_length: int) -> tuple[int, dict[str, Any]]:
    """POST straight to the ASGI app, which no HTTP client lets us lie to about Content-Length."""
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
        (b"content-length", str(content_length).encode()),
        (b"authorization", f"Bearer {server.key}".encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/files",
        "raw_path": b"/v1/files",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("testclient", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    await server.app(scope, receive, send)
    start, payload = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], json.loads(payload)
