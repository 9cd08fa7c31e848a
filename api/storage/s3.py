"""The S3 backend: any S3-compatible store (AWS S3, MinIO, Ceph, GCS's interoperability endpoint).

Credentials and region come from boto3's usual chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, a profile, an instance role);
TUNERY_S3_ENDPOINT_URL points at a store other than AWS. Files go up in parts of PART_BYTES, a few
at a time: memory stays bounded whatever the file's size, and an object appears only once whole.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from api.storage import CHUNK, StorageUnreachable, StoredObject

PART_BYTES = 16 * 1024 * 1024
TRANSFER = TransferConfig(
    multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=4, use_threads=True
)
_MISSING = {"404", "NoSuchKey", "NotFound"}
# What a failed store call raises, on either backend: a full disk, a bucket that refused or vanished.
STORE_ERRORS: tuple[type[Exception], ...] = (OSError, BotoCoreError, ClientError, S3UploadFailedError)


class S3Store:
    remote = True

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnreachable(
                f"TUNERY_STORAGE_URL={self.describe()}: the bucket {self.bucket!r} cannot be reached "
                f"({error}); create it, or check TUNERY_S3_ENDPOINT_URL and the AWS_* credentials"
            ) from error

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put_file(self, key: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._key(key), Config=TRANSFER)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    def get_file(self, key: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.partial-")
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self._key(key), partial, Config=TRANSFER)
            os.replace(partial, destination)
        finally:
            Path(partial).unlink(missing_ok=True)

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return StoredObject(key, head["ContentLength"], head["ETag"], head["LastModified"].timestamp())

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        # No Range for the whole object: an empty one has no satisfiable range at all.
        last = "" if end is None else str(end - 1)
        ranged = {} if start == 0 and end is None else {"Range": f"bytes={start}-{last}"}
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **ranged)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def objects(self, prefix: str) -> Iterator[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix)
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                yield StoredObject(key, item["Size"], item["ETag"], item["LastModified"].timestamp())

    def children(self, prefix: str) -> list[str]:
        folder = self._key(prefix.rstrip("/") + "/")
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=folder, Delimiter="/"
        )
        names = []
        for page in pages:
            names += [p["Prefix"][len(folder) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
            names += [item["Key"][len(folder) :] for item in page.get("Contents", [])]
        return sorted(names)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = [self._key(found.key) for found in self.objects(prefix.rstrip("/") + "/")]
        for start in range(0, len(keys), 1000):  # S3's most keys per DeleteObjects
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def abort_stale_uploads(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted
