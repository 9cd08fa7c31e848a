"""The storage interface on both backends: the data directory, and S3 (moto's server on loopback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.cli import main
from api.config import Settings
from api.storage import ObjectStore, StorageUnreachable, store_of
from api.storage.directories import get_directory, has_directory, put_directory
from api.storage.s3 import PART_BYTES, S3Store
from tests.support.storage import both_storages as storage  # noqa: F401 (both backends)
from tests.support.storage import new_bucket, s3_client, storage_settings


@pytest.fixture
def store(storage: str, tmp_path: Path, request: pytest.FixtureRequest) -> ObjectStore:  # noqa: F811
    return store_of(Settings(data_dir=tmp_path / "data", **storage_settings(storage, request)))


class TestObjects:
    def test_a_file_round_trips_and_reads_by_range(self, store: ObjectStore, tmp_path: Path) -> None:
        source = tmp_path / "source"
        source.write_bytes(bytes(range(256)) * 5000)
        store.put_file("files/1/file-a", source)
        assert store.get_bytes("files/1/file-a") == source.read_bytes()
        assert b"".join(store.read("files/1/file-a", 100, 356)) == source.read_bytes()[100:356]
        assert b"".join(store.read("files/1/file-a", 1_279_990)) == source.read_bytes()[1_279_990:]
        found = store.stat("files/1/file-a")
        assert found is not None and found.size == 1_280_000 and found.etag
        copy = tmp_path / "copy"
        store.get_file("files/1/file-a", copy)
        assert copy.read_bytes() == source.read_bytes()

    def test_an_empty_file_reads_as_nothing(self, store: ObjectStore, tmp_path: Path) -> None:
        (tmp_path / "empty").write_bytes(b"")
        store.put_file("files/1/empty", tmp_path / "empty")
        assert b"".join(store.read("files/1/empty")) == b""

    def test_missing_objects_are_none_and_deleting_them_is_no_error(self, store: ObjectStore) -> None:
        assert store.stat("files/1/nothing") is None
        assert store.get_bytes("files/1/nothing") is None
        store.delete("files/1/nothing")
        assert store.delete_prefix("artifacts/nothing/") == 0

    def test_listing_children_and_deleting_a_prefix(self, store: ObjectStore) -> None:
        for key in ("jobs/a/x.bin", "jobs/a/deep/y.bin", "jobs/b/z.bin", "files/1/f"):
            store.put_bytes(key, key.encode())
        assert store.children("jobs/") == ["a", "b"]
        assert [o.key for o in store.objects("jobs/a/")] == ["jobs/a/deep/y.bin", "jobs/a/x.bin"]
        assert store.delete_prefix("jobs/a/") == 2
        assert [o.key for o in store.objects("jobs/")] == ["jobs/b/z.bin"]
        assert store.get_bytes("files/1/f") == b"files/1/f"

    def test_a_directory_goes_up_and_comes_down_whole(self, store: ObjectStore, tmp_path: Path) -> None:
        source = tmp_path / "checkpoint-12"
        (source / "nested").mkdir(parents=True)
        (source / "model.safetensors").write_bytes(os.urandom(50_000))
        (source / "nested" / "state.json").write_text("{}")
        assert put_directory(store, "jobs/j/output/trainer/checkpoint-12", source) == 50_002
        assert has_directory(store, "jobs/j/output/trainer/checkpoint-12")
        target = tmp_path / "elsewhere" / "checkpoint-12"
        if store.remote:
            assert get_directory(store, "jobs/j/output/trainer/checkpoint-12", target)
            assert (target / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
            assert (target / "nested" / "state.json").read_text() == "{}"
            assert not get_directory(store, "jobs/other/", tmp_path / "none")
            assert not (tmp_path / "none").exists()


class TestS3:
    def test_a_large_file_goes_up_in_parts(self, s3_endpoint: str, tmp_path: Path) -> None:
        bucket = new_bucket(s3_endpoint)
        store = S3Store(bucket, "p", s3_endpoint)
        source = tmp_path / "big"
        with source.open("wb") as out:
            out.truncate(PART_BYTES * 2 + 5)
        store.put_file("files/1/big", source)
        head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key="p/files/1/big")
        assert head["ContentLength"] == PART_BYTES * 2 + 5
        assert head["ETag"].strip('"').endswith("-3")  # a multipart upload's ETag counts its parts

    def test_a_bucket_without_a_prefix_keeps_keys_at_its_root(self, s3_endpoint: str) -> None:
        bucket = new_bucket(s3_endpoint)  # TUNERY_STORAGE_URL=s3://tunery/, as compose and the trial use
        store = store_of(Settings(storage_url=f"s3://{bucket}/", s3_endpoint_url=s3_endpoint))
        store.put_bytes("jobs/a/x", b"x")
        listed = s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
        assert [item["Key"] for item in listed] == ["jobs/a/x"]
        assert store.children("jobs/") == ["a"] and [o.key for o in store.objects("jobs/")] == ["jobs/a/x"]

    def test_stale_multipart_uploads_are_aborted(self, s3_endpoint: str) -> None:
        bucket = new_bucket(s3_endpoint)
        store = S3Store(bucket, "p", s3_endpoint)
        client = s3_client(s3_endpoint)
        client.create_multipart_upload(Bucket=bucket, Key="p/files/1/cut-off")
        # moto dates every multipart upload in 2010, so this one counts as stale at once (on S3 one
        # initiated within the hour is left alone: it may be in flight).
        assert store.abort_stale_uploads(older_than_seconds=3600) == 1
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


class TestSettings:
    @pytest.mark.parametrize("url", ["file:///data", "s3://", "s3:///prefix", "minio://bucket"])
    def test_a_bad_storage_url_is_refused_naming_the_setting(self, url: str) -> None:
        with pytest.raises(ValidationError, match="TUNERY_STORAGE_URL"):
            Settings(storage_url=url)

    def test_an_empty_storage_url_is_the_data_directory(self) -> None:
        assert Settings(storage_url="", s3_endpoint_url="").storage_url is None

    def test_the_api_refuses_to_start_on_a_bad_url(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("TUNERY_STORAGE_URL", "gs://bucket")
        assert main(["api"]) == 2
        assert "TUNERY_STORAGE_URL is 'gs://bucket'" in capsys.readouterr().err

    def test_a_missing_bucket_is_named_at_start(
        self,
        s3_endpoint: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("TUNERY_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("TUNERY_STORAGE_URL", "s3://no-such-bucket/tunery")
        monkeypatch.setenv("TUNERY_S3_ENDPOINT_URL", s3_endpoint)
        assert main(["api"]) == 2
        err = capsys.readouterr().err
        assert "TUNERY_STORAGE_URL=s3://no-such-bucket/tunery/" in err and "'no-such-bucket'" in err
        with pytest.raises(StorageUnreachable):
            S3Store("no-such-bucket", "", s3_endpoint).check()
