"""Downloading a job's artifact or a checkpoint's: a tar streamed from the stored directory, built as it
is sent, whatever the artifact's size."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.fine_tuning import artifacts, tar_download
from tests.api.test_checkpoints_and_models import unpacked
from tests.api.test_jobs import create
from tests.support.api_objects import succeed_with_checkpoints

pytestmark = pytest.mark.integration


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the files are the subject here, not the database


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> str:
    return request.param


class TestDownloadRoutes:
    def test_the_job_artifact_is_a_tar_unpacking_to_adapter(
        self, client: TestClient, app, training_file: str
    ) -> None:  # type: ignore[no-untyped-def]
        job_id = create(client, training_file).json()["id"]
        succeed_with_checkpoints(app, job_id, steps=(4,))
        response = client.get(f"/v1/fine_tuning/jobs/{job_id}/adapter")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-tar"
        assert response.headers["content-disposition"] == f'attachment; filename="{job_id}-adapter.tar"'
        assert int(response.headers["content-length"]) == len(response.content)
        assert unpacked(response.content) == {"adapter/adapter_config.json": b"artifact of adapter"}

    def test_a_checkpoint_is_fetched_by_id_and_by_model_name(
        self, client: TestClient, app, training_file: str
    ) -> None:  # type: ignore[no-untyped-def]
        job_id = create(client, training_file).json()["id"]
        (name,) = succeed_with_checkpoints(app, job_id, steps=(8,))
        checkpoint_id = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"][0]["id"]
        by_id = client.get(f"/v1/fine_tuning/jobs/{job_id}/adapter", params={"checkpoint": checkpoint_id})
        by_name = client.get(f"/v1/fine_tuning/checkpoints/{name}/adapter")
        for response in (by_id, by_name):
            assert response.status_code == 200
            assert response.headers["content-disposition"].endswith(f'filename="{job_id}-step-8-adapter.tar"')
            assert unpacked(response.content) == {"adapter/adapter_config.json": b"artifact of step-8"}

    def test_an_artifact_no_longer_stored_is_404(self, client: TestClient, app, training_file: str) -> None:  # type: ignore[no-untyped-def]
        job_id = create(client, training_file).json()["id"]
        (name,) = succeed_with_checkpoints(app, job_id, steps=(4,))
        artifacts.remove_adapter(app.state.settings, job_id)
        artifacts.remove(app.state.settings, artifacts.checkpoint_dir(app.state.settings, job_id, 4))
        assert client.get(f"/v1/fine_tuning/jobs/{job_id}/adapter").status_code == 404
        assert client.get(f"/v1/fine_tuning/checkpoints/{name}/adapter").status_code == 404


class TestTarOf:
    def test_a_directory_streams_in_bounded_chunks_and_unpacks_to_the_same_files(
        self, tmp_path: Path
    ) -> None:
        model = tmp_path / "model"
        (model / "tokenizer").mkdir(parents=True)
        weights = os.urandom(3 * tar_download.CHUNK + 7)  # several chunks and a partial block
        (model / "model.safetensors").write_bytes(weights)
        (model / "config.json").write_text('{"model_type": "llama"}')
        (model / "tokenizer" / "tokenizer.json").write_text("{}")
        (model / "empty.txt").write_bytes(b"")

        length, chunks = tar_download.tar_of(model)
        sizes = []
        archive = io.BytesIO()
        for chunk in chunks:
            sizes.append(len(chunk))
            archive.write(chunk)
        assert max(sizes) <= tar_download.CHUNK
        assert archive.tell() == length

        with tarfile.open(fileobj=io.BytesIO(archive.getvalue()), mode="r:") as tar:
            tar.extractall(tmp_path / "unpacked", filter="data")
            names = tar.getnames()
        assert names[0] == "adapter" and all(name.startswith("adapter") for name in names)
        unpacked_dir = tmp_path / "unpacked" / "adapter"
        assert (unpacked_dir / "model.safetensors").read_bytes() == weights
        assert (unpacked_dir / "tokenizer" / "tokenizer.json").read_text() == "{}"
        assert (unpacked_dir / "empty.txt").read_bytes() == b""

    def test_objects_make_the_same_tar_as_their_directory(self, tmp_path: Path) -> None:
        model = tmp_path / "model"
        (model / "tokenizer").mkdir(parents=True)
        (model / "model.safetensors").write_bytes(os.urandom(2 * tar_download.CHUNK + 3))
        (model / "tokenizer" / "tokenizer.json").write_text("{}")
        (model / "a.txt").write_bytes(b"")

        def reader(path: Path):  # type: ignore[no-untyped-def]
            def read(start: int):  # type: ignore[no-untyped-def]
                with path.open("rb") as stream:
                    stream.seek(start)
                    yield stream.read()

            return read

        files = [p for p in model.rglob("*") if p.is_file()]
        objects = [(p.relative_to(model).as_posix(), p.stat().st_size, "etag", reader(p)) for p in files]
        on_disk, from_objects = tar_download.plan(model), tar_download.plan_of_objects(objects)
        assert from_objects.length == on_disk.length
        assert b"".join(from_objects.chunks()) == b"".join(on_disk.chunks())
        assert b"".join(from_objects.chunks(1000, 3000)) == b"".join(on_disk.chunks(1000, 3000))

    def test_a_file_that_shrinks_while_it_is_sent_breaks_the_download(self, tmp_path: Path) -> None:
        model = tmp_path / "model"
        model.mkdir()
        (model / "model.safetensors").write_bytes(b"x" * 5000)
        _, chunks = tar_download.tar_of(model)
        next(chunks)  # the root directory's header: the file's size is already promised
        (model / "model.safetensors").write_bytes(b"x" * 10)
        with pytest.raises(OSError, match="shrank"):
            list(chunks)
