"""The two storage backends for the tests: the data directory, and S3 against moto's S3 server.

Every test that takes `settings` runs on the backend `storage` names: the local directory unless
TUNERY_TEST_STORAGE=s3 (then the whole suite runs on a bucket). A module that touches storage runs
on both by importing `both_storages` as its `storage` fixture:

    from tests.support.storage import both_storages as storage  # noqa: F401

The S3 server is moto's, in server mode (real HTTP, multipart uploads, ranges), started once per
session on 127.0.0.1 only; each test gets a bucket of its own.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from api.config import Settings
from api.fine_tuning import artifacts
from api.storage import store_of
from api.storage.directories import put_directory
from tests.support.services import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "tunery-test",
    "AWS_SECRET_ACCESS_KEY": "tunery-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)  # the API and worker processes the tests start inherit them
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def both_storages(request: pytest.FixtureRequest) -> str:
    return request.param


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")


def new_bucket(endpoint: str) -> str:
    name = f"tunery-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def storage_settings(storage: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The Settings fields of the backend `storage` names ({} for the data directory)."""
    if storage == "local":
        return {}
    endpoint = request.getfixturevalue("s3_endpoint")
    return {"storage_url": f"s3://{new_bucket(endpoint)}/tunery", "s3_endpoint_url": endpoint}


def stored_objects(settings: Settings, prefix: str = "") -> list[str]:
    """Every key the store holds under `prefix` (files/, artifacts/, jobs/), whichever the backend."""
    if settings.storage_url is None:
        root = settings.data_path / prefix
        return sorted(p.relative_to(settings.data_path).as_posix() for p in root.rglob("*") if p.is_file())
    bucket, _, base = settings.storage_url.removeprefix("s3://").partition("/")
    client = s3_client(settings.s3_endpoint_url or "")
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{base}/{prefix}"):
        keys += [item["Key"].removeprefix(f"{base}/") for item in page.get("Contents", [])]
    return sorted(keys)


def open_multipart_uploads(settings: Settings) -> int:
    assert settings.storage_url is not None
    bucket = settings.storage_url.removeprefix("s3://").partition("/")[0]
    listed = s3_client(settings.s3_endpoint_url or "").list_multipart_uploads(Bucket=bucket)
    return len(listed.get("Uploads", []))


def staged(settings: Settings) -> list[Path]:
    staging = settings.files_path / ".staging"
    return list(staging.iterdir()) if staging.is_dir() else []


def to_store(settings: Settings, directory: Path) -> None:
    """Put an artifact a test wrote where the worker would have: on S3 uploaded under its key, and
    gone from the disk (so the API must find it in the bucket); on disk, left where it is."""
    store = store_of(settings)
    if store.remote and directory.is_dir():
        put_directory(store, artifacts.key_of(settings, directory), directory)
        shutil.rmtree(directory)


def write_artifact_files(settings: Settings, directory: Path, files: dict[str, bytes]) -> None:
    """Write (or overwrite) files of a stored artifact, on either backend."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    to_store(settings, directory)
